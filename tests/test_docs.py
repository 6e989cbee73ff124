"""The manual: README.md as the entry point, docs/ for the rest, their links, and the generated
configuration reference."""

import re

from tests.helpers import PROJECT_DIR
from tools import configref

DOCS = PROJECT_DIR / "docs"
README = PROJECT_DIR / "README.md"
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lowercased, punctuation but hyphens dropped, spaces to hyphens."""
    fenced = False
    found = set()
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            found.add(re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-"))
    return found


def pages():
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_readme_is_an_entry_point_with_the_quickstart_on_its_first_screen():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    quickstart = lines.index("## Quickstart")
    assert quickstart < 40
    screen = "\n".join(lines[quickstart : quickstart + 40])
    assert "make test" in screen and "make up" in screen and "make plan SET=" in screen


def test_every_docs_page_is_in_the_readmes_table_of_the_manual():
    manual = README.read_text().split("\n## The manual\n", 1)[1]
    listed = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", manual))
    assert listed == {page.name for page in DOCS.glob("*.md")}


def test_every_relative_link_reaches_a_file_and_its_heading():
    broken = []
    for page in pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_configuration_reference_is_generated_from_pulumi_yaml():
    text = configref.PAGE.read_text()
    assert configref.render(text, configref.table()) == text, "run: python -m tools.configref"


def test_the_generated_table_lists_each_declared_key_with_its_default():
    table = configref.table()
    assert "| `bundleId` | string | `small_3_0` |" in table
    assert "| `protect` | boolean | `true` |" in table
    assert "| `appSecrets` | secret object | `{}` |" in table
    assert "| `availabilityZone` | string | empty |" in table


def test_no_page_or_file_keeps_a_merge_conflict_marker():
    """A conflict resolved in the code but not on a page leaves its markers in the manual."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "*.md", "*.py", "*.sh", "*.yaml", "*.yml", "Makefile"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    marked = [
        f"{path}:{number}"
        for path in tracked
        for number, line in enumerate((PROJECT_DIR / path).read_text().splitlines(), start=1)
        if line.startswith(("<<<<<<< ", ">>>>>>> "))
    ]
    assert not marked, marked


def test_the_readmes_per_stack_defaults_are_the_programs():
    from components.reboots import REBOOT_WINDOW_BY_DEFAULT
    from components.settings import BACKUPS_BY_DEFAULT_PREFIX, DATA_DISK_DEFAULT_GB

    readme = (PROJECT_DIR / "README.md").read_text()
    prefix = f"`{BACKUPS_BY_DEFAULT_PREFIX}*` stacks"
    assert f"| `dataDiskGb` | `auto` ({DATA_DISK_DEFAULT_GB} GB on {prefix})" in readme
    assert f"| `rebootWindow` | `auto` (`{REBOOT_WINDOW_BY_DEFAULT}` UTC on {prefix})" in readme
