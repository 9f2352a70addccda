from grader.cli import main

if __name__ == "__main__":  # importing it (multiprocessing's spawn does) must not start a run
    raise SystemExit(main())
