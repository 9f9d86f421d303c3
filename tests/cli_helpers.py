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


def char_device(path):
    """A character device like /dev/null (1, 3), made at `path`: tests never aim writes at
    the real /dev/null, which code with the bug they look for would replace. Skips the
    test where device nodes cannot be made (not root)."""
    import os
    import stat

    import pytest

    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as error:
        pytest.skip(f"cannot make a device node here ({error.strerror})")
    return path
