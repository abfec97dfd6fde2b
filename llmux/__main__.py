"""`python -m llmux` runs the command-line interface."""

from llmux.cli import main

raise SystemExit(main())
