from .cli import main

# The guard matters: DataLoader workers started with spawn/forkserver re-import __main__.
if __name__ == "__main__":
    raise SystemExit(main())
