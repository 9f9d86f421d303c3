"""Running train.py in-process from tests."""

import train


def cli(capsys, *argv):
    """Run train.main with `argv` (any objects, made strings) and return
    (exit code, stdout, stderr); argparse errors come back as their exit code."""
    capsys.readouterr()
    try:
        code = train.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
