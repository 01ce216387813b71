"""The ``cxresearch`` command line: ``init``, ``simulate``, ``validate``, ``run``, ``evaluate``.

Each command lives beside the code it drives (``cxresearch/<area>/commands.py``) and imports heavy
libraries only when it runs, so ``cxresearch --help`` stays fast.
"""

from __future__ import annotations

import click

from cxresearch import __version__
from cxresearch.data.commands import validate_command
from cxresearch.data.simulator import simulate_command
from cxresearch.studies.commands import run_command
from cxresearch.studies.evaluate import evaluate_command
from cxresearch.studies.init import init_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cxresearch")
def main() -> None:
    """Customer Experience research: draft a spec from exports, simulate data, validate a spec, run studies,
    evaluate a driver model on answers it did not see."""


main.add_command(init_command)
main.add_command(simulate_command)
main.add_command(validate_command)
main.add_command(run_command)
main.add_command(evaluate_command)

if __name__ == "__main__":  # pragma: no cover
    main()
