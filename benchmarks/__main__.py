import sys

if __name__ == "__main__":
    # imported here so that worker processes (spawned, they re-import this module) stay light
    from .runner import main

    sys.exit(main())
