"""Tests for digits.archive: round trips, atomic writes, and refusal of bad or hostile files."""

import collections
import dataclasses
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import mutated

from digits import modelfile
from digits.archive import FORMAT_VERSION, load, save
from nets.config import MLP
from nets.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


Pair = collections.namedtuple("Pair", "first second")


def small_params(rng=None, sizes=(4, 3, 2), dtype=np.float32):
    rng = rng or np.random.default_rng(0)
    return [
        {"w": rng.standard_normal((m, n)).astype(dtype), "b": rng.standard_normal(n).astype(dtype)}
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def save_model(path, params, meta):
    """A model file of MLP params (the usual payload of archives), sizes read off the shapes."""
    sizes = [params[0]["w"].shape[0]] + [layer["w"].shape[1] for layer in params]
    settings = dataclasses.replace(MLP, layers=tuple(sizes))
    modelfile.save_model(path, params, settings, {
        "dataset": "mnist", "class_names": [str(i) for i in range(sizes[-1])],
        "image_shape": [28, 28], **meta})


def load_model(path, expect_input_size=None, expect_classes=None):
    model = modelfile.load_model(path)
    if expect_input_size is not None or expect_classes is not None:
        model.check_fits("the data", expect_input_size or model.network.input_size,
                         expect_classes or model.network.num_classes)
    return model.params, model.meta


def assert_same_tree(a, b):
    """Exact equality: container types, dict keys, Python scalar types, array dtypes/values."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (a != a and b != b)


def rewrite_zip(src, dst, *, replace=None, drop=(), add=None):
    """Copy the zip `src` to `dst`, replacing, dropping or adding members (CRCs recomputed)."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info)))
        for name, data in add.items():
            zout.writestr(name, data)


def read_header(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("meta.json"))


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ round trips

def test_round_trip_nested_tree(tmp_path):
    tree = {
        "params": [
            {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float64)},
            ({"k": np.array([True, False])}, None, np.array(7, dtype=np.int64)),
        ],
        "state": {
            "step": 12, "lr": 0.5, "flag": True, "scalar": np.float32(2.5),
            "empty": [], "empty_tuple": (), "empty_dict": {}, "nothing": None,
            "ints": np.array([[1, -2]], dtype=np.int8), "u": np.arange(4, dtype=np.uint16),
            "zero_size": np.zeros((0, 3), np.float32), "big_endian": np.arange(3, dtype=">f8"),
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "half": np.array([1.5], np.float16), "complex": np.array([1 + 2j]),
            "nan": np.array([np.nan, np.inf, -np.inf]),
        },
        "": {".": np.ones(1), "..": np.ones(2), "a/b": np.ones(3), "%root": np.ones(4),
             "ü": np.ones(5), "%": np.ones(6)},
    }
    path = tmp_path / "c.npz"
    save(path, tree, {"kind": "checkpoint", "epoch": 3, "history": [0.5, 0.25]})
    got, meta = load(path)
    expected = dict(tree)
    expected["state"] = {**tree["state"], "scalar": np.array(2.5, np.float32)}
    assert_same_tree(expected, got)
    assert meta == {"kind": "checkpoint", "epoch": 3, "history": [0.5, 0.25]}
    assert got["state"]["fortran"].flags.c_contiguous and got["state"]["fortran"].flags.writeable


def test_root_leaf_and_none(tmp_path):
    for tree in (np.arange(3), None, 5, [None]):
        save(tmp_path / "x.npz", tree, {"kind": "checkpoint"})
        got, _ = load(tmp_path / "x.npz")
        assert_same_tree(tree, got)


def test_file_is_an_ordinary_npz_with_path_like_names(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, small_params(), {})
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == [
            "meta.json", "params/0/b", "params/0/w", "params/1/b", "params/1/w"
        ]
        np.testing.assert_array_equal(npz["params/1/w"], small_params()[1]["w"])
    header = read_header(path)
    assert header["format_version"] == FORMAT_VERSION == 1
    assert header["kind"] == "model"
    assert header["arrays"]["params/0/w"] == {"shape": [4, 3], "dtype": "<f4"}


def test_saves_exactly_to_the_given_path_and_deterministically(tmp_path):
    save_model(tmp_path / "model", small_params(), {})
    save_model(tmp_path / "again", small_params(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "model"]
    assert (tmp_path / "model").read_bytes() == (tmp_path / "again").read_bytes()


def test_namedtuples_round_trip_as_their_own_class(tmp_path):
    tree = {"state": Pair(np.ones(2), [Pair(1, None)])}
    save(tmp_path / "n.npz", tree, {"kind": "checkpoint"})
    got, _ = load(tmp_path / "n.npz")
    assert type(got["state"]) is Pair and type(got["state"].second[0]) is Pair
    assert_same_tree(tree, got)


leaf_arrays = hnp.arrays(
    dtype=st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.boolean_dtypes(),
                    hnp.complex_number_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
leaves = st.one_of(leaf_arrays, st.none(), st.integers(-2**63, 2**63 - 1), st.booleans(),
                   st.floats(allow_nan=False))
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4), children, max_size=3),
    ),
    max_leaves=8,
)


@given(tree=trees)
def test_round_trip_any_tree(tmp_path_factory, tree):
    path = tmp_path_factory.mktemp("rt") / "t.npz"
    save(path, tree, {"kind": "checkpoint"})
    got, meta = load(path)
    assert_same_tree(tree, got)
    assert meta == {"kind": "checkpoint"}


# ------------------------------------------------------------------------- refusals on save

@pytest.mark.parametrize("tree, words", [
    ({"w": np.array([object(), 1], dtype=object)}, "object arrays"),
    ({"w": np.array(["a", "b"])}, "only bool and numeric"),
    ({"w": "text"}, "is a str"),
    ({1: np.ones(2)}, "not a str"),
    ([2**70], "only bool and numeric"),
])
def test_save_refuses_unstorable_trees(tmp_path, tree, words):
    path = tmp_path / "m.npz"
    save_model(path, small_params(), {})
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=words):
        save(path, tree, {"kind": "checkpoint"})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


@pytest.mark.parametrize("meta, words", [
    ({}, "'kind'"),
    ({"kind": "checkpoint", "when": object()}, "not JSON"),
    ({"kind": "checkpoint", "loss": float("nan")}, "not JSON"),
])
def test_save_refuses_bad_meta(tmp_path, meta, words):
    with pytest.raises(CheckpointError, match=words):
        save(tmp_path / "m.npz", {"a": np.ones(2)}, meta)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- atomicity

def test_failure_mid_write_leaves_old_file_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = small_params(np.random.default_rng(1))
    save_model(path, old, {})
    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            fp.write(b"partial")
            raise RuntimeError("disk on fire")
        return real_write_array(fp, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_model(path, small_params(np.random.default_rng(2)), {})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert_same_tree(old, load_model(path)[0])


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_os_failure_becomes_checkpoint_error_and_keeps_old_file(tmp_path, monkeypatch, target):
    path = tmp_path / "m.npz"
    old = small_params(np.random.default_rng(1))
    save_model(path, old, {})

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, target, fail)
    with pytest.raises(CheckpointError, match="No space left"):
        save_model(path, small_params(np.random.default_rng(2)), {})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert_same_tree(old, load_model(path)[0])


def test_interrupt_mid_write_cleans_up(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.npz", small_params(), {})
    assert list(tmp_path.iterdir()) == []


CHILD = """
import sys
import numpy as np
sys.path.insert(0, "tests")
from test_archive import save_model
contents = [
    [{"w": np.full((784, 600), v, np.float32), "b": np.full(600, v, np.float32)},
     {"w": np.full((600, 10), v, np.float32), "b": np.full(10, v, np.float32)}]
    for v in (1.0, 2.0)
]
i = 0
while True:
    save_model(sys.argv[1], contents[i % 2], {"value": float(i % 2 + 1)})
    i += 1
"""


def test_sigkill_during_saves_never_leaves_a_damaged_file(tmp_path):
    path = tmp_path / "m.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rng = random.Random(20240611)
    for _ in range(5):
        path.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not path.exists():
                assert child.poll() is None, "the saving child process died"
                assert time.monotonic() < deadline, "the child never saved"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        params, meta = load_model(path, expect_input_size=784, expect_classes=10)
        value = meta["value"]
        assert value in (1.0, 2.0)
        for layer in params:
            assert (layer["w"] == value).all() and (layer["b"] == value).all()


# ---------------------------------------------------------------------- refusals on load

def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        load(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [
    b"layer_sizes: 784 100 10\n", b"", bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                                dtype=np.uint8)),
])
def test_not_a_zip(tmp_path, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a model file"):
        load_model(path)


def test_zip_without_meta(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, w=np.ones(3))
    with pytest.raises(CheckpointError, match="no meta.json"):
        load(path)


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "good.npz"
    save_model(path, small_params(), {})
    return path


def with_header(model_file, change):
    header = read_header(model_file)
    change(header)
    out = model_file.with_name("bad.npz")
    rewrite_zip(model_file, out, replace={"meta.json": json.dumps(header).encode()})
    return out


@pytest.mark.parametrize("meta_bytes, words", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply|not valid JSON"),
])
def test_meta_json_not_json(model_file, meta_bytes, words):
    bad = model_file.with_name("bad.npz")
    rewrite_zip(model_file, bad, replace={"meta.json": meta_bytes})
    with pytest.raises(CheckpointError, match=words):
        load(bad)


@pytest.mark.parametrize("version, words", [
    (2, "format version 2, but this program reads format version 1"),
    ("1", "format version '1'"),
    (True, "format version True"),
    (None, "format version None"),
])
def test_unknown_format_version(model_file, version, words):
    bad = with_header(model_file, lambda h: h.update(format_version=version))
    with pytest.raises(CheckpointError, match=words):
        load_model(bad)


def test_missing_format_version(model_file):
    bad = with_header(model_file, lambda h: h.pop("format_version"))
    with pytest.raises(CheckpointError, match="no format_version.*reads format version 1"):
        load(bad)


@pytest.mark.parametrize("change, words", [
    (lambda h: h["arrays"]["params/0/w"].update(shape=[3, 4]), "does not match|says"),
    (lambda h: h["arrays"]["params/0/w"].update(dtype="<f8"), "does not match|says"),
    (lambda h: h["arrays"]["params/0/w"].update(dtype="|O"), "object arrays"),
    (lambda h: h["arrays"]["params/0/w"].update(dtype="not-a-dtype"), "unknown dtype"),
    (lambda h: h["arrays"]["params/0/w"].update(shape=[-1, 3]), "valid shape"),
    (lambda h: h["arrays"]["params/0/w"].update(shape=[10**9, 10**9]), "size of array"),
    (lambda h: h["arrays"].pop("params/0/w"), "not listed"),
    (lambda h: h["arrays"].update({"ghost": {"shape": [1], "dtype": "<f4"}}), "missing"),
    (lambda h: h.update(arrays=[]), "no 'arrays'"),
    (lambda h: h.update(kind=None), "no 'kind'"),
    (lambda h: h.update(meta=[]), "'meta'"),
    (lambda h: h.update(tree={"list": []}), "not used by the tree"),
    (lambda h: h.update(tree={"set": []}), "malformed tree"),
    (lambda h: h["tree"]["dict"]["params"]["list"][0]["dict"].update(
        b={"array": "params/0/w"}), "twice"),
    (lambda h: h["tree"]["dict"]["params"]["list"][0]["dict"].update(
        b={"array": "nowhere"}), "missing array"),
    (lambda h: h["tree"]["dict"]["params"]["list"][0]["dict"]["b"].update(python="int"),
     "cannot be the Python"),
])
def test_meta_json_inconsistent_with_arrays(model_file, change, words):
    bad = with_header(model_file, change)
    with pytest.raises(CheckpointError, match=words):
        load_model(bad)


def test_member_missing_or_extra(model_file):
    bad = model_file.with_name("bad.npz")
    rewrite_zip(model_file, bad, drop={"params/1/b.npy"})
    with pytest.raises(CheckpointError, match="'params/1/b' listed in meta.json is missing"):
        load(bad)
    rewrite_zip(model_file, bad, add={"extra.npy": npy_bytes(np.ones(2))})
    with pytest.raises(CheckpointError, match="'extra.npy' is not listed"):
        load(bad)


def test_member_whose_array_disagrees_with_meta(model_file):
    bad = model_file.with_name("bad.npz")
    rewrite_zip(model_file, bad, replace={"params/0/w.npy": npy_bytes(np.ones((3, 4), "f4"))})
    with pytest.raises(CheckpointError, match=r"has shape \(3, 4\).*says \(4, 3\)"):
        load_model(bad)
    rewrite_zip(model_file, bad, replace={"params/0/w.npy": b"\x93NUMPY garbage" + bytes(60)})
    with pytest.raises(CheckpointError):
        load_model(bad)


class Evil:
    """Unpickling this creates the directory `marker` (os.mkdir): proof that it ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("variant", ["bare", "claims float", "claims object"])
def test_pickled_object_arrays_are_refused_and_never_unpickled(model_file, variant):
    marker = model_file.with_name("MARKER")
    payload = np.array([Evil(marker), 1.0], dtype=object)
    bad = model_file.with_name("evil.npz")
    np.savez(bad, **{"params/0/w": payload})
    if variant != "bare":
        header = read_header(model_file)
        if variant == "claims object":
            header["arrays"]["params/0/w"] = {"shape": [2], "dtype": "|O"}
        payload_npy = zipfile.ZipFile(bad).read("params/0/w.npy")
        rewrite_zip(model_file, bad, replace={"params/0/w.npy": payload_npy,
                                              "meta.json": json.dumps(header).encode()})
    with pytest.raises(CheckpointError, match="refused|no meta.json"):
        load_model(bad)
    with pytest.raises(CheckpointError):
        load(bad)
    assert not marker.exists()
    if variant == "claims float":
        with pytest.raises(CheckpointError, match="contains pickled objects; refused"):
            load(bad)
    # The payload is live: numpy with allow_pickle=True does run it.
    with np.load(bad, allow_pickle=True) as npz:
        npz["params/0/w"]
    assert marker.is_dir()


# ---------------------------------------------------------------------------------- fuzzing

def _good_model_bytes():
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "m.npz"
        save_model(path, small_params(sizes=(3, 2, 2)), {"note": "fuzz"})
        return path.read_bytes()


GOOD = _good_model_bytes()


def _load_both(path):
    for loader in (load, load_model):
        try:
            loader(path)
        except CheckpointError:
            pass


@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    path.write_bytes(data)
    _load_both(path)


@given(
    flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(GOOD))),
)
def test_fuzz_mutated_model_file(tmp_path_factory, flips, cut):
    data = mutated(GOOD, flips, cut)
    path = tmp_path_factory.mktemp("fuzz") / "m.npz"
    path.write_bytes(data)
    _load_both(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@given(data=st.data())
def test_fuzz_meta_json_with_valid_crc(tmp_path_factory, data):
    """Structured fuzzing past the zip CRCs: replace one node of meta.json with junk."""
    header = json.loads(zipfile.ZipFile(io.BytesIO(GOOD)).read("meta.json"))
    node = header
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        if not isinstance(node[key], (dict, list)) or not node[key] or data.draw(st.booleans()):
            node[key] = data.draw(json_values)
            break
        node = node[key]
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / "good.npz").write_bytes(GOOD)
    rewrite_zip(directory / "good.npz", directory / "m.npz",
                replace={"meta.json": json.dumps(header).encode()})
    _load_both(directory / "m.npz")


# ------------------------------------------------- sizes a file declares are not trusted


def claim_size(path, member, size):
    """Patch the central directory so that `member` claims `size` (< 4 GiB) bytes,
    compressed and not, as a crafted file would; the data itself stays as it is."""
    raw = bytearray(Path(path).read_bytes())
    start = 0
    while (start := raw.find(b"PK\x01\x02", start)) != -1:
        name_len = int.from_bytes(raw[start + 28:start + 30], "little")
        if bytes(raw[start + 46:start + 46 + name_len]) == member.encode():
            raw[start + 20:start + 28] = size.to_bytes(4, "little") * 2
        start += 4
    Path(path).write_bytes(bytes(raw))


def test_a_member_claiming_gigabytes_is_refused_before_reading(tmp_path):
    import tracemalloc

    path = tmp_path / "m.npz"
    save_model(path, small_params(), {})
    claim_size(path, "params/0/w.npy", 2 * 2**30)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("params/0/w.npy").file_size == 2 * 2**30
    tracemalloc.start()
    with pytest.raises(CheckpointError, match=r"claims 2.0 GiB but the file has"):
        load(path)
    assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    tracemalloc.stop()


def test_compressed_members_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, small_params(), {})
    deflated = tmp_path / "deflated.npz"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(deflated, "w",
                                                       zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with pytest.raises(CheckpointError, match="stored uncompressed"):
        load(deflated)


def test_arrays_larger_than_memory_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, small_params(sizes=(100, 100, 2)), {})
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", "10K")
    with pytest.raises(CheckpointError, match="would take 40.2 KiB, more than the 10.0 KiB"):
        load(path)


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.npz"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), ("/dev/zero", "character device")):
        with pytest.raises(CheckpointError, match=kind):
            load(path)
