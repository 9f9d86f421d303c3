"""Tests for digits.notebook: the notebook's pickle imports, hostile pickles never run."""

import builtins
import hashlib
import os
import pickle
import pickletools
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import NOTEBOOK_SHA256
from hypothesis import given
from hypothesis import strategies as st
from strategies import mutated

from digits.notebook import load_notebook_params
from nets.errors import CheckpointError

ALLOWED_GLOBALS = {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}


def notebook_dict(sizes=(4, 3, 2), column_bias=True, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for l, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        out[f"W{l}"] = rng.standard_normal((n, m))
        out[f"b{l}"] = rng.standard_normal((n, 1) if column_bias else n)
    return out


def write_pickle(path, obj, protocol=3):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def arrays_from_stream(data, sizes):
    """Read the float64 arrays straight out of the pickle's opcodes, without unpickling."""
    shapes = {}
    for l, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        shapes[f"W{l}"], shapes[f"b{l}"] = (n, m), (n, 1)
    found, key, previous = {}, None, None
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg in shapes:
            key = arg
        elif "BYTES" in op.name and key is not None and key not in found and len(arg) > 1:
            assert previous == "NEWFALSE", "expected C-ordered data (fortran flag False)"
            assert len(arg) == 8 * np.prod(shapes[key])
            found[key] = np.frombuffer(arg, "<f8").reshape(shapes[key])
        previous = op.name
    assert set(found) == set(shapes)
    return found


# -------------------------------------------------------------------------- the real file

def test_seed_file_is_the_documented_one_and_names_only_numpy_globals(notebook_pkl):
    data = notebook_pkl.read_bytes()
    assert hashlib.sha256(data).hexdigest() == NOTEBOOK_SHA256
    readme = notebook_pkl.parent / "README.md"  # the shared copy documents its checksum
    assert not readme.exists() or NOTEBOOK_SHA256 in readme.read_text()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    assert {arg for name, arg in ops if name == "GLOBAL"} == ALLOWED_GLOBALS
    assert not {name for name, _ in ops} & {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2",
                                            "EXT4", "PERSID", "BINPERSID"}


def test_seed_file_imports_with_the_original_values_transposed(notebook_pkl):
    params, sizes = load_notebook_params(notebook_pkl)
    assert sizes == [784, 100, 64, 28, 10]
    reference = arrays_from_stream(notebook_pkl.read_bytes(), sizes)
    assert len(params) == 4
    for l, layer in enumerate(params, start=1):
        assert set(layer) == {"w", "b"}
        assert layer["w"].shape == (sizes[l - 1], sizes[l])
        assert layer["b"].shape == (sizes[l],)
        for value in layer.values():
            assert value.dtype == np.float32 and value.flags.c_contiguous
        np.testing.assert_array_equal(layer["w"], reference[f"W{l}"].T.astype(np.float32))
        np.testing.assert_array_equal(layer["b"], reference[f"b{l}"].ravel().astype(np.float32))
        assert 0 < np.abs(layer["w"]).max() < 10  # trained weights, not blank memory


# ---------------------------------------------------------------------------- good pickles

@pytest.mark.parametrize("protocol", [3, 4])
@pytest.mark.parametrize("column_bias", [True, False])
def test_small_pickle_converts_to_our_layout(tmp_path, protocol, column_bias):
    original = notebook_dict(sizes=(5, 4, 3), column_bias=column_bias)
    path = write_pickle(tmp_path / "p.pkl", original, protocol)
    params, sizes = load_notebook_params(str(path))
    assert sizes == [5, 4, 3]
    for l, layer in enumerate(params, start=1):
        np.testing.assert_array_equal(layer["w"], original[f"W{l}"].T.astype(np.float32))
        np.testing.assert_array_equal(layer["b"], original[f"b{l}"].ravel().astype(np.float32))
        assert layer["w"].flags.c_contiguous and layer["w"].dtype == np.float32


# ----------------------------------------------------------------------- hostile pickles

class RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return (builtins.eval, (self.code,))


class MakesDir:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def hostile_pickles(marker):
    touch = f"touch {marker}"
    popen_global = (
        b"\x80\x03csubprocess\nPopen\nq\x00]q\x01(X\x05\x00\x00\x00touchq\x02X"
        + len(str(marker)).to_bytes(4, "little") + str(marker).encode()
        + b"q\x03e\x85q\x04Rq\x05."
    )
    return {
        "os.system": pickle.dumps(RunsShell(touch), protocol=3),
        "os.system protocol 4": pickle.dumps(RunsShell(touch), protocol=4),
        "os.system protocol 0": pickle.dumps(RunsShell(touch), protocol=0),
        "eval": pickle.dumps(CallsEval(f"__import__('os').mkdir({str(marker)!r})"), protocol=3),
        "subprocess.Popen": popen_global,
        "nested in a valid dict": pickle.dumps({**notebook_dict(), "x": MakesDir(marker)}, 3),
        "inside an object array": pickle.dumps(np.array([MakesDir(marker)], dtype=object), 3),
        "numpy, but not allowed": b"cnumpy\nload\n(X\x01\x00\x00\x00xtR.",
        "numpy scalar": pickle.dumps(np.float64(1.0), protocol=3),
        "bytearray": b"\x80\x05\x96" + (3).to_bytes(8, "little") + b"abc\x98.",
        "persistent id": b"\x80\x03X\x01\x00\x00\x00xQ.",
        "INST": b"(isubprocess\nPopen\nX\x05\x00\x00\x00touchtR.",
    }


@pytest.mark.parametrize("name", list(hostile_pickles("MARKER")))
def test_hostile_pickles_are_refused_before_running(tmp_path, name):
    marker = tmp_path / "MARKER"
    data = hostile_pickles(marker)[name]
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    refused = r"refused to load .*evil\.pkl: it (references|builds|uses)"
    with pytest.raises(CheckpointError, match=refused):
        load_notebook_params(path)
    assert not marker.exists()


def test_hostile_payloads_are_live(tmp_path):
    """The payloads above really do run under a plain unpickler (in a child process)."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pkl"
    path.write_bytes(hostile_pickles(marker)["subprocess.Popen"])
    code = f"import pickle; p = pickle.load(open({str(path)!r}, 'rb')); p.wait()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert marker.exists()


def test_misused_admitted_globals_are_refused(tmp_path):
    path = tmp_path / "p.pkl"
    # ndarray called directly (to allocate memory), instead of through _reconstruct.
    path.write_bytes(b"\x80\x03cnumpy\nndarray\nK\x05\x85\x85R.")
    with pytest.raises(CheckpointError, match="not a readable parameter pickle"):
        load_notebook_params(path)
    # _reconstruct asked for a dtype instead of an ndarray subtype.
    path.write_bytes(
        b"\x80\x03cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nX\x02\x00\x00\x00f8"
        b"\x85RK\x00\x85C\x01b\x87R."
    )
    with pytest.raises(CheckpointError, match="not a plain array"):
        load_notebook_params(path)
    # A dtype whose pickled flags (163) claim float64 holds object pointers: numpy's own
    # dtype.__setstate__ accepts that, and numpy then treats the numbers as pointers.
    state = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    data = pickle.dumps(notebook_dict(), protocol=3)
    assert data.count(state) == 1
    path.write_bytes(data.replace(state, state.replace(b"K\x00", b"K\xa3")))
    with pytest.raises(CheckpointError, match="refused.*unusual state"):
        load_notebook_params(path)
    # An array state claiming far more data than the stream holds (no allocation happens).
    data = pickle.dumps({"W1": np.ones((2, 3)), "b1": np.ones((2, 1))}, protocol=3)
    assert data.count(b"K\x02K\x03\x86") == 1
    path.write_bytes(data.replace(b"K\x02K\x03\x86", b"J\x00\x00\x00\x7fK\x03\x86"))
    with pytest.raises(CheckpointError, match="does not match its 48 bytes"):
        load_notebook_params(path)
    # An object-dtype array.
    path.write_bytes(pickle.dumps({"W1": np.array([[None]]), "b1": np.ones(1)}, protocol=3))
    with pytest.raises(CheckpointError, match="refused.*dtype 'O8'"):
        load_notebook_params(path)


# ----------------------------------------------------------------------- wrong structure

def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("obj, words", [
    ([np.ones((2, 2))], "holds a list"),
    ({}, "does not hold keys"),
    (_without(notebook_dict(), "b2"), "does not hold keys"),
    ({**notebook_dict(), "W3": np.ones((2, 2))}, "does not hold keys"),
    ({**notebook_dict(), "extra": 1}, "does not hold keys"),
    ({**notebook_dict(), 7: 1}, "does not hold keys"),
    ({**notebook_dict(), "W2": np.ones((2, 5))}, "W2 takes 5 inputs but layer 1 has 3"),
    ({**notebook_dict(), "b1": np.ones((3, 2))}, r"b1 has shape \(3, 2\)"),
    ({**notebook_dict(), "b1": np.ones((2, 1))}, r"b1 has shape \(2, 1\)"),
    ({**notebook_dict(), "W1": np.ones((3, 4, 1))}, "W1 has shape"),
    ({**notebook_dict(), "W1": np.ones((0, 4))}, "W1 has shape"),
    ({**notebook_dict(), "W1": np.ones((3, 4), dtype=int)}, "W1 is not a float array"),
    ({**notebook_dict(), "W1": [[1.0] * 4] * 3}, "W1 is not a float array"),
    ({**notebook_dict(), "W1": np.ones((3, 4), dtype=np.complex64)}, "W1 is not a float array"),
    ({**notebook_dict(), "b2": np.full((2, 1), np.nan)}, "layer 2 holds NaN"),
    ({**notebook_dict(), "W1": np.full((3, 4), 1e300)}, "layer 1 holds NaN or infinite"),
])
def test_wrong_structure(tmp_path, obj, words):
    path = write_pickle(tmp_path / "p.pkl", obj)
    with pytest.raises(CheckpointError, match=words):
        load_notebook_params(path)


def test_not_a_pickle_truncated_trailing_missing(tmp_path):
    path = tmp_path / "p.pkl"
    absurd_bytearray = b"\x80\x05\x96" + (2**60).to_bytes(8, "little") + b"abc."
    for data in (b"", b"W1,W2\n1,2\n", pickle.dumps(notebook_dict(), 3)[:-50], absurd_bytearray):
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match="not a readable parameter pickle"):
            load_notebook_params(path)
    path.write_bytes(pickle.dumps(notebook_dict(), 3) + b"junk")
    with pytest.raises(CheckpointError, match="extra bytes"):
        load_notebook_params(path)
    with pytest.raises(CheckpointError, match="no such parameter file"):
        load_notebook_params(tmp_path / "missing.pkl")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_notebook_params(tmp_path)


# --------------------------------------------------------------------------------- fuzzing

GOOD = pickle.dumps(notebook_dict(sizes=(3, 2, 2)), protocol=3)


def _load_or_refuse(directory, data):
    path = directory / "p.pkl"
    path.write_bytes(data)
    try:
        params, sizes = load_notebook_params(path)
    except CheckpointError as exc:
        assert re.search(r"p\.pkl", str(exc))
        return
    assert len(params) == len(sizes) - 1


@given(data=st.binary(max_size=1024))
def test_fuzz_random_bytes(tmp_path_factory, data):
    _load_or_refuse(tmp_path_factory.mktemp("fuzz"), data)


@given(
    flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(GOOD))),
)
def test_fuzz_mutated_pickle(tmp_path_factory, flips, cut):
    data = mutated(GOOD, flips, cut)
    _load_or_refuse(tmp_path_factory.mktemp("fuzz"), data)


@pytest.mark.parametrize("protocol", [3, 4, 5])
@pytest.mark.parametrize("fortran", [False, True])
def test_pickle_protocols_3_to_5_import_the_same_arrays(tmp_path, protocol, fortran):
    obj = notebook_dict((5, 4, 3), seed=protocol)
    if fortran:
        obj = {k: np.asfortranarray(v) for k, v in obj.items()}
    path = write_pickle(tmp_path / "p.pkl", obj, protocol=protocol)
    params, sizes = load_notebook_params(path)
    assert sizes == [5, 4, 3]
    for layer, n in zip(params, (1, 2)):
        assert np.array_equal(layer["w"], obj[f"W{n}"].T.astype(np.float32))
        assert np.array_equal(layer["b"], obj[f"b{n}"].ravel().astype(np.float32))


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_old_protocols_are_named_plainly(tmp_path, protocol):
    path = write_pickle(tmp_path / "p.pkl", notebook_dict(), protocol=protocol)
    with pytest.raises(CheckpointError, match="protocol (0 or 1|2); this importer reads pickle "
                       "protocols 3, 4 and 5"):
        load_notebook_params(path)


def test_out_of_band_buffers_are_refused(tmp_path):
    buffers = []
    data = pickle.dumps(notebook_dict(), protocol=5, buffer_callback=buffers.append)
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="out-of-band buffers"):
        load_notebook_params(path)


def test_protocol_5_frombuffer_with_hostile_arguments_is_refused(tmp_path):
    good = pickle.dumps({"W1": np.ones((2, 3)), "b1": np.ones((2, 1))}, protocol=5)
    # The same stream with the shape of W1 changed from (2, 3) to (3, 3): 48 bytes no longer fit.
    bad = good.replace(b"K\x02K\x03\x86", b"K\x03K\x03\x86", 1)
    assert bad != good
    path = tmp_path / "p.pkl"
    path.write_bytes(bad)
    with pytest.raises(CheckpointError, match="does not match its 48 bytes"):
        load_notebook_params(path)


def test_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "p.pkl"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="FIFO"):
        load_notebook_params(fifo)
