"""Run a service with the environment kept in its 0600 file, so that no secret is ever on a
command line: `python -m prodcat.launch ENV_FILE COMMAND [ARG...]`. The command replaces
this process, so supervisord signals the service itself."""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> None:
    env_file, command = argv[0], argv[1:]
    with open(env_file, encoding="utf-8") as handle:
        env = json.load(handle)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])
