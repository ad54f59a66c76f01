"""The contract every command follows: `main(argv) -> int`, run through `run_command`.

Bad input (any `ValueError`, which the project's own errors subclass: data, config, model-loading and run-folder
errors) becomes one `<prog>: error: <message>` line on stderr and exit code 2, with no traceback: the message says
what to fix. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

EXIT_BAD_INPUT = 2


def run_command(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None,
                prog: str | None = None) -> int:
    """Call main(argv); a ValueError becomes one error line and exit code 2."""
    try:
        return main(argv) or 0
    except ValueError as error:
        print(f"{prog or Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
