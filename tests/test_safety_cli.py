"""train.py as an attacker or a careless user runs it: where files go and what is never
destroyed, crafted files, untrusted sizes, other data, signals and broken streams.

In-process runs use `cli`; signals and pipes use child processes.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import char_device, cli
from hypothesis import given
from hypothesis import strategies as st
from idx_helpers import FILE_NAMES, fake_mnist, write_fake_mnist, write_idx

import train
from digits.modelfile import load_checkpoint, load_model

REPO = Path(__file__).resolve().parents[1]
TINY = ["--layers", "784,16,10", "--epochs", "1", "--val-size", "50", "--quiet",
        "--batch-size", "32"]
TIMEOUT = 120


@pytest.fixture(autouse=True)
def no_debug_env(monkeypatch):
    monkeypatch.delenv("DIGITS_DEBUG", raising=False)
    monkeypatch.delenv("DIGITS_MEMORY_LIMIT", raising=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fake-mnist")
    write_fake_mnist(directory, 320, 60, np.random.default_rng(4))
    return directory


@pytest.fixture(scope="module")
def other_data(tmp_path_factory) -> Path:
    """Same shapes as data_dir, other images and labels."""
    directory = tmp_path_factory.mktemp("fake-mnist-other")
    write_fake_mnist(directory, 300, 60, np.random.default_rng(5))
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir) -> Path:
    """A finished run: m.npz and m.checkpoint.npz."""
    directory = tmp_path_factory.mktemp("run")
    code = train.main(["--data-dir", str(data_dir), "--save", str(directory / "m.npz"), *TINY])
    assert code == 0
    return directory


def one_error_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def no_tmp_files(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------ nothing destroyed unasked


def test_a_new_run_refuses_to_replace_an_earlier_checkpoint(capsys, tmp_path, data_dir,
                                                            run_dir):
    checkpoint = run_dir / "m.checkpoint.npz"
    before = checkpoint.read_bytes(), (run_dir / "m.npz").read_bytes()
    for args in ([], ["--checkpoint", checkpoint, "--save", tmp_path / "new.npz"]):
        code, _, err = cli(capsys, "--data-dir", data_dir, "--save", run_dir / "m.npz", *TINY,
                           *args) if not args else cli(capsys, "--data-dir", data_dir, *TINY,
                                                       *args)
        assert code == 1
        one_error_line(err, str(checkpoint), f"--resume {checkpoint}", "--overwrite")
    assert (checkpoint.read_bytes(), (run_dir / "m.npz").read_bytes()) == before


def test_a_new_run_refuses_to_replace_an_earlier_model(capsys, tmp_path, data_dir, run_dir):
    model = run_dir / "m.npz"
    before = model.read_bytes()
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", model, "--no-checkpoint", *TINY)
    assert code == 1
    one_error_line(err, str(model), "--overwrite")
    assert model.read_bytes() == before


def test_overwrite_replaces_both(capsys, tmp_path, data_dir):
    model = tmp_path / "m.npz"
    assert cli(capsys, "--data-dir", data_dir, "--save", model, *TINY)[0] == 0
    first = model.read_bytes()
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", model, *TINY, "--seed", "1",
                       "--overwrite")
    assert code == 0, err
    assert model.read_bytes() != first


def test_import_notebook_refuses_an_existing_model(capsys, tmp_path, run_dir):
    code, _, err = cli(capsys, "--import-notebook", tmp_path / "p.pkl", "--save",
                       run_dir / "m.npz")
    assert code == 1
    one_error_line(err, "already exists", "--overwrite")


def test_resume_writes_beside_the_checkpoint_never_where_the_file_says(capsys, tmp_path,
                                                                       data_dir):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checkpoint = tmp_path / "run.checkpoint.npz"
    assert cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "run.npz", *TINY,
               "--epochs", "2", "--no-checkpoint")[0] == 0
    assert cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "x.npz", *TINY,
               "--checkpoint", checkpoint)[0] == 0
    # A crafted checkpoint naming another file to save to: the field is not read.
    crafted = tmp_path / "crafted.checkpoint.npz"
    rewrite(checkpoint, crafted, lambda h: h["meta"]["run"].update(save=str(victim)))
    code, _, err = cli(capsys, "--resume", crafted, "--epochs", "2", "--quiet")
    assert code == 0, err
    assert victim.read_text() == "precious"
    assert load_model(tmp_path / "crafted.npz").meta["history"][-1]["epoch"] == 2
    code, _, err = cli(capsys, "--resume", checkpoint, "--epochs", "2", "--quiet",
                       "--overwrite")
    assert code == 0, err
    assert (tmp_path / "run.npz").exists() and victim.read_text() == "precious"
    assert load_model(tmp_path / "run.npz").meta["history"][-1]["epoch"] == 2


def test_resume_writes_where_the_user_says(capsys, tmp_path, data_dir):
    checkpoint = tmp_path / "c.npz"
    assert cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
               "--checkpoint", checkpoint)[0] == 0
    code, _, err = cli(capsys, "--resume", checkpoint, "--epochs", "2", "--quiet", "--save",
                       tmp_path / "elsewhere" / "m2.npz")
    assert code == 0, err
    assert load_model(tmp_path / "elsewhere" / "m2.npz").meta["history"][-1]["epoch"] == 2
    code, _, err = cli(capsys, "--resume", checkpoint, "--epochs", "3", "--quiet")
    assert code == 0, err
    assert (tmp_path / "c.model.npz").exists()


# --------------------------------------------------------------------- write paths


@pytest.mark.parametrize("flag", ["--save", "--checkpoint", "--report", "--plots",
                                  "--data-dir", "--load", "--resume"])
def test_empty_paths_are_usage_errors(capsys, tmp_path, flag):
    code, _, err = cli(capsys, flag, "")
    assert code == 2
    assert err.startswith(f"error: {flag}: the path is empty") and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--save", "--checkpoint"])
@pytest.mark.parametrize("special", ["device", "fifo", "directory", "link-to-device"])
def test_special_files_are_never_replaced(capsys, tmp_path, data_dir, flag, special):
    # A device node like /dev/null made here: code with the bug would replace the real one.
    target = {"device": tmp_path / "null", "fifo": tmp_path / "fifo",
              "directory": tmp_path / "dir", "link-to-device": tmp_path / "link"}[special]
    if special in ("device", "link-to-device"):
        char_device(tmp_path / "null")
    if special == "fifo":
        os.mkfifo(target)
    elif special == "directory":
        target.mkdir()
    elif special == "link-to-device":
        target.symlink_to(tmp_path / "null")
    other = {"--save": tmp_path / "m.npz", "--checkpoint": tmp_path / "c.npz"}
    paths = {**other, flag: target}
    code, _, err = cli(capsys, "--data-dir", data_dir, *TINY, "--save", paths["--save"],
                       "--checkpoint", paths["--checkpoint"])
    assert code == 1
    one_error_line(err, str(target), "not a regular file")
    assert special not in ("device", "link-to-device") or (tmp_path / "null").is_char_device()
    assert not target.is_file() and no_tmp_files(tmp_path)


def test_no_checkpoint_writes_only_the_model(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--no-checkpoint")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    code, _, err = cli(capsys, "--no-checkpoint", "--checkpoint", tmp_path / "c.npz")
    assert code == 2 and "--no-checkpoint" in err


@pytest.mark.parametrize("flag, make", [
    ("--report", lambda p: p.mkdir()),                       # a directory
    ("--report", lambda p: None),                            # under a file, below
    ("--plots", lambda p: p.write_text("")),                 # a file
    ("--save", lambda p: None),
    ("--checkpoint", lambda p: None),
])
def test_unwritable_outputs_fail_before_the_first_epoch(capsys, tmp_path, data_dir, flag,
                                                        make):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = tmp_path / "out"
    make(target)
    if flag in ("--save", "--checkpoint") or not target.exists():
        target = blocker / "out.json"  # its directory is a file
    args = {"--save": tmp_path / "m.npz", "--checkpoint": tmp_path / "c.npz", flag: target}
    start = time.perf_counter()
    code, out, err = cli(capsys, "--data-dir", data_dir, *TINY, *sum(
        ([k, v] for k, v in args.items()), []))
    assert code == 1
    one_error_line(err, str(target))
    assert "epoch" not in out and not (tmp_path / "m.npz").exists()
    assert not (tmp_path / "c.npz").exists()
    assert time.perf_counter() - start < 30


def test_a_failed_model_write_says_how_to_recover(capsys, tmp_path, data_dir, monkeypatch):
    from digits import runs

    def disk_full(*args, **kwargs):
        from nets.errors import CheckpointError
        raise CheckpointError(f"cannot write {tmp_path / 'm.npz'}: No space left on device")

    monkeypatch.setattr(runs, "save_model", disk_full)
    checkpoint = tmp_path / "c.npz"
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--checkpoint", checkpoint)
    assert code == 1
    one_error_line(err, "No space left", f"--resume {checkpoint} --save")
    assert load_checkpoint(checkpoint)[0].epoch == 1  # the finished run
    monkeypatch.undo()
    code, _, err = cli(capsys, "--resume", checkpoint, "--save", tmp_path / "m2.npz", "--quiet")
    assert code == 0, err
    assert load_model(tmp_path / "m2.npz").meta["history"][-1]["epoch"] == 1


# ------------------------------------------------------------------ crafted files


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy an archive, applying `change` to its meta.json header."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "meta.json":
                header = json.loads(data)
                change(header)
                data = json.dumps(header).encode()
            zout.writestr(info, data)
    return dst


MODEL_EDITS = {
    "class_names int": lambda h: h["meta"].update(class_names=7),
    "three class names": lambda h: h["meta"].update(class_names=["a", "b", "c"]),
    "history string": lambda h: h["meta"].update(history="oops"),
    "history entry": lambda h: h["meta"]["history"][0].update(train_loss="low"),
    "lr string": lambda h: h["meta"]["settings"].update(lr="0.1"),
    "epochs string": lambda h: h["meta"]["settings"].update(epochs="1"),
    "image_shape huge": lambda h: h["meta"].update(image_shape=[100000, 100000]),
    "image_shape floats": lambda h: h["meta"].update(image_shape=[28.0, 28]),
    "dataset unknown": lambda h: h["meta"].update(dataset="cifar"),
    "dataset other": lambda h: h["meta"].update(dataset="fashion-mnist"),
    "test_accuracy": lambda h: h["meta"].update(test_accuracy=7),
    "normalisation": lambda h: h["meta"].update(normalisation={"mean": 0, "std": 0}),
    "stop_reason": lambda h: h["meta"].update(stop_reason=3),
    "seed negative": lambda h: h["meta"]["settings"].update(seed=-1),
    "versions": lambda h: h["meta"].update(versions=[1]),
}


@pytest.mark.parametrize("edit", MODEL_EDITS)
def test_crafted_model_fields_end_in_one_line(capsys, tmp_path, data_dir, run_dir, edit):
    path = rewrite(run_dir / "m.npz", tmp_path / "bad.npz", MODEL_EDITS[edit])
    code, _, err = cli(capsys, "--load", path, "--evaluate", "--data-dir", data_dir)
    assert code == 1
    one_error_line(err, str(path))


CHECKPOINT_EDITS = {
    "epoch string": lambda h: h["meta"]["state"].update(epoch="1"),
    "epoch beyond": lambda h: h["meta"]["state"].update(epoch=99),
    "step negative": lambda h: h["meta"]["state"].update(step=-1),
    "step beyond": lambda h: h["meta"]["state"].update(step=10**6),
    "total steps": lambda h: h["meta"]["state"].update(total_steps=3),
    "history": lambda h: h["meta"]["state"].update(history="oops"),
    "history short": lambda h: h["meta"]["state"].update(history=[]),
    "hits": lambda h: h["meta"]["state"].update(hits=10**9),
    "loss_sum": lambda h: h["meta"]["state"].update(loss_sum="x"),
    "best_epoch": lambda h: h["meta"]["state"].update(best_epoch=50),
    "rng": lambda h: h["meta"]["state"].update(rng_state={"bit_generator": "MT19937"}),
    "first_loss": lambda h: h["meta"]["state"].update(first_loss=[1]),
    "extra field": lambda h: h["meta"]["state"].update(surprise=1),
    "lr string": lambda h: h["meta"]["run"]["settings"].update(lr="0.1"),
    "layers disagree": lambda h: h["meta"]["run"]["settings"].update(layers=[784, 32, 10]),
    "optimizer disagrees": lambda h: h["meta"]["run"]["settings"].update(optimizer="sgd"),
    "model disagrees": lambda h: h["meta"]["run"]["settings"].update(model="cnn", layers=[]),
    "fingerprint": lambda h: h["meta"]["run"]["data"].update(fingerprint="abc"),
    "image shape": lambda h: h["meta"]["run"]["data"].update(image_shape=[360, 360]),
    "classes": lambda h: h["meta"]["run"]["data"].update(num_classes=11),
    "examples": lambda h: h["meta"]["run"]["data"].update(examples="many"),
    "run missing": lambda h: h["meta"].pop("run"),
    "data_dir": lambda h: h["meta"]["run"].update(data_dir=5),
}


@pytest.mark.parametrize("edit", CHECKPOINT_EDITS)
def test_crafted_checkpoint_fields_end_in_one_line(capsys, tmp_path, run_dir, edit):
    path = rewrite(run_dir / "m.checkpoint.npz", tmp_path / "bad.npz", CHECKPOINT_EDITS[edit])
    code, _, err = cli(capsys, "--resume", path, "--save", tmp_path / "out.npz", "--epochs", 2)
    assert code == 1
    one_error_line(err, str(path))
    assert not (tmp_path / "out.npz").exists()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3), max_leaves=6)


@given(key=st.sampled_from(["epoch", "step", "total_steps", "loss_sum", "hits", "seen",
                            "history", "best_val_loss", "best_epoch", "bad_epochs",
                            "first_loss", "rng_state"]), value=JSON_VALUES)
def test_any_state_field_value_loads_or_fails_in_one_line(tmp_path_factory, run_dir, key,
                                                          value):
    from nets.errors import CheckpointError

    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    try:
        rewrite(run_dir / "m.checkpoint.npz", path,
                lambda h: h["meta"]["state"].update({key: value}))
    except ValueError:  # NaN and infinity are not JSON
        return
    try:
        load_checkpoint(path)
    except CheckpointError as error:
        assert "\n" not in str(error) and str(path) in str(error)


# -------------------------------------------------------------------------- the data


def test_resume_on_other_data_is_refused(capsys, tmp_path, data_dir, other_data):
    checkpoint = tmp_path / "c.npz"
    assert cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
               "--checkpoint", checkpoint)[0] == 0
    code, _, err = cli(capsys, "--resume", checkpoint, "--epochs", 2, "--data-dir", other_data,
                       "--save", tmp_path / "m2.npz")
    assert code == 1
    one_error_line(err, "differs from the data", str(checkpoint))
    assert not (tmp_path / "m2.npz").exists()


def test_evaluate_says_which_dataset_and_refuses_another(capsys, tmp_path, data_dir, run_dir):
    model = run_dir / "m.npz"
    code, out, err = cli(capsys, "--load", model, "--evaluate", "--data-dir", data_dir)
    assert code == 0, err
    assert "MNIST (handwritten digits) model; testing on the mnist test set (the dataset " \
        "the model was trained on)" in out
    code, _, err = cli(capsys, "--load", model, "--evaluate", "--data-dir", data_dir,
                       "--dataset", "fashion-mnist")
    assert code == 1
    one_error_line(err, "MNIST (handwritten digits) model", "--dataset fashion-mnist")


def test_a_fashion_model_says_so_on_a_photo(capsys, tmp_path, run_dir):
    pytest.importorskip("PIL")
    from photo_fixtures import synthetic_photo  # noqa: F401  (fixtures need Pillow too)
    from PIL import Image

    fashion = rewrite(run_dir / "m.npz", tmp_path / "f.npz", lambda h: (
        h["meta"].update(dataset="fashion-mnist", class_names=[
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
            "Sneaker", "Bag", "Ankle boot"]), h["meta"]["settings"].update(
            dataset="fashion-mnist")))
    photo = tmp_path / "seven.png"
    pixels = np.full((64, 64), 255, np.uint8)
    pixels[10:50, 30:36] = 0
    Image.fromarray(pixels).save(photo)
    code, out, err = cli(capsys, "--load", fashion, "--predict", photo)
    assert code == 0, err
    assert "Fashion-MNIST (clothes) model" in err and "not digits" in err
    assert out.startswith(f"{photo}: ")


def test_empty_test_set_is_one_line(capsys, tmp_path):
    arrays = fake_mnist(200, 0, np.random.default_rng(1))
    for name, key in zip(FILE_NAMES, ("train_images", "train_labels", "test_images",
                                      "test_labels")):
        write_idx(tmp_path / name, arrays[key])
    code, _, err = cli(capsys, "--data-dir", tmp_path, "--save", tmp_path / "m.npz", *TINY)
    assert code == 1
    one_error_line(err, "no images")


def test_negative_seed_is_a_usage_error(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *TINY,
                       "--seed", "-1")
    assert code == 2 and err.startswith("error: --seed") and "Traceback" not in err


# ---------------------------------------------------------------- untrusted sizes


@pytest.mark.parametrize("args, words", [
    (["--layers", "784,100000000,10"], ["784,100000000,10", "smaller --layers"]),
    (["--layers", "784,30000,30000,10"], ["784,30000,30000,10", "smaller --layers"]),
    (["--model", "cnn", "--batch-size", "0"], ["--batch-size 0", "cnn", "smaller --batch-size"]),
])
def test_configurations_too_big_for_memory(capsys, tmp_path, data_dir, monkeypatch, args,
                                           words):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", "64M")
    base = [a for a in TINY if a not in ("784,16,10", "--layers", "32", "--batch-size")]
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz", *base,
                       *args)
    assert code == 1
    one_error_line(err, "needs about", "64.0 MiB", *words)
    assert not list(tmp_path.iterdir())


def test_a_huge_layer_is_refused_at_the_real_limit(capsys, tmp_path, data_dir):
    code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz",
                       "--layers", "784,100000000,10", "--epochs", "1", "--quiet",
                       "--val-size", "50")
    assert code == 1
    one_error_line(err, "needs about", "TiB")


def test_memory_error_and_os_error_are_one_line(capsys, tmp_path, data_dir, monkeypatch):
    from digits import runs

    for error in (MemoryError(), OSError(28, "No space left on device", str(tmp_path))):
        def fail(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(runs, "train", fail)
        code, _, err = cli(capsys, "--data-dir", data_dir, "--save", tmp_path / "m.npz",
                           *TINY, "--overwrite")
        assert code == 1
        one_error_line(err)
        with pytest.raises(type(error)):
            train.main(["--data-dir", str(data_dir), "--save", str(tmp_path / "m.npz"), *TINY,
                        "--overwrite", "--debug"])
        capsys.readouterr()


# --------------------------------------------------------------------- child processes


def child_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    env.pop("DIGITS_DEBUG", None)
    return env


def start(tmp_path: Path, *args) -> subprocess.Popen:
    out, err = open(tmp_path / "out.txt", "w"), open(tmp_path / "err.txt", "w")
    return subprocess.Popen([sys.executable, "train.py", *map(str, args)], cwd=REPO,
                            env=child_env(), stdout=out, stderr=err)


def wait_for(proc: subprocess.Popen, path: Path, tmp_path: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        assert proc.poll() is None, (tmp_path / "err.txt").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, data_dir, signum, code):
    model, checkpoint = tmp_path / "m.npz", tmp_path / "c.npz"
    proc = start(tmp_path, "--data-dir", data_dir, "--layers", "784,16,10", "--epochs", 50,
                 "--val-size", 50, "--batch-size", 8, "--quiet", "--save", model,
                 "--checkpoint", checkpoint)
    try:
        wait_for(proc, checkpoint, tmp_path)
        proc.send_signal(signum)
        assert proc.wait(timeout=TIMEOUT) == code
    finally:
        proc.kill()
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert f"--resume {checkpoint}" in err
    state, _ = load_checkpoint(checkpoint)
    assert state.step >= 1 and not model.exists()
    assert no_tmp_files(tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0])
def test_ctrl_c_during_start_up_shows_no_traceback(tmp_path, data_dir, delay):
    # Epochs enough that the run is still going at every delay on a fast machine (30 of
    # these tiny epochs once ended before 0.3 s, and the signal met the exiting process).
    proc = start(tmp_path, "--data-dir", data_dir, *TINY, "--epochs", 100_000, "--save",
                 tmp_path / "m.npz")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=TIMEOUT)
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err, err
    # Before train.py runs at all, the interpreter's own start-up prints this one word.
    assert code in (0, 130) or (code == 1 and err.strip() == "KeyboardInterrupt"), err


@pytest.mark.parametrize("error, code", [("KeyboardInterrupt", 130), ("BrokenPipeError", 141)])
def test_interrupts_while_modules_load_end_quietly(error, code):
    # What a Ctrl-C (or a closed pipe) at any moment after train.py's first import meets.
    program = f"import digits.console\nimport numpy\nraise {error}"
    done = subprocess.run([sys.executable, "-c", program], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == code
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_broken_pipe_is_quiet(tmp_path, data_dir, run_dir, reader):
    # `true` exits before reading anything: the first line written meets a closed pipe.
    command = (f"{sys.executable} train.py --load {run_dir / 'm.npz'} --evaluate --data-dir "
               f"{data_dir} | {reader}; echo \"${{PIPESTATUS[0]}}\" >&2")
    done = subprocess.run(["bash", "-c", command], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert done.stdout.count("\n") == (1 if reader == "head -1" else 0)
    status = done.stderr.strip().splitlines()
    assert len(status) == 1 and status[0] in ("0", "141"), done.stderr


@pytest.mark.parametrize("flag", ["--load", "--resume"])
def test_a_fifo_is_refused_without_hanging(tmp_path, flag):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    args = [flag, fifo] + (["--evaluate"] if flag == "--load" else [])
    done = subprocess.run([sys.executable, "train.py", *map(str, args)], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    one_error_line(done.stderr, "FIFO")
