"""make mutants (tools/mutants.py) is not part of make test; this keeps its mutants applicable."""

from tests.helpers import PROJECT_DIR
from tools.mutants import MUTANTS


def test_every_mutant_still_finds_the_code_it_mutates_and_names_existing_tests():
    """A merge that moves the code a mutant targets would stop `make mutants` at that mutant."""
    for mutant in MUTANTS:
        assert mutant.original in (PROJECT_DIR / mutant.path).read_text(), mutant.why
        assert mutant.original != mutant.mutated, mutant.why
        for test in mutant.tests:
            assert (PROJECT_DIR / test).is_file(), (mutant.why, test)
