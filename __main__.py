"""`python -m reg`: the same command line as the `reg` script."""

from reg.cli.main import main

main()
