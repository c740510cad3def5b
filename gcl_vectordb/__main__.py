"""`python -m gcl_vectordb` is the `gcl-vdb` command (used by tests that need a real subprocess)."""

from gcl_vectordb.cli.app import main

if __name__ == "__main__":
    main()
