"""The guided tour (docs/how-it-works.md) cannot rot: every code block runs and prints
exactly the output written under it, and every link to the code points at a file that
exists and, with a #Lnn anchor, at a line holding the code its text names."""

import re
from pathlib import Path

import pytest
from doc_blocks import python_blocks, run, same_output

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "docs" / "how-it-works.md"
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def test_every_tour_block_prints_what_is_written_under_it():
    namespace: dict = {}
    blocks = python_blocks(TOUR)
    assert len(blocks) >= 8
    for block in blocks:
        assert block.expected is not None, f"the block at line {block.line} shows no output"
        actual = run(block, namespace, "how-it-works.md")
        assert same_output(actual, block.expected), \
            f"the block at line {block.line} printed:\n{actual}\nbut the tour shows:\n" \
            f"{block.expected}"


def code_links(path: Path) -> list[tuple[str, str]]:
    """(link text, target) for each link that is not a web address or an in-page anchor."""
    return [(text, target) for text, target in LINK.findall(path.read_text())
            if not re.match(r"[a-z]+:|#", target)]


def anchored_code(text: str) -> str:
    """The code a line anchor names: the link text's code span without a trailing `...`."""
    match = re.fullmatch(r"`([^`]+)`", text)
    assert match, f"a #L link's text must be the code on that line in backticks: {text!r}"
    return re.sub(r"[\s,]*\.\.\.\)?$", "", match[1])


@pytest.mark.parametrize("doc", [TOUR, ROOT / "README.md"], ids=lambda p: p.name)
def test_every_link_points_at_a_file_and_a_line_that_holds_what_it_names(doc):
    links = code_links(doc)
    for text, target in links:
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve()
        assert path.exists(), f"{doc.name}: [{text}] links to {file}, which does not exist"
        if anchor:
            number = re.fullmatch(r"L(\d+)", anchor)
            assert number, f"{doc.name}: [{text}] has anchor #{anchor}; use #L<line>"
            lines = path.read_text().splitlines()
            line = lines[int(number[1]) - 1] if int(number[1]) <= len(lines) else ""
            code = anchored_code(text)
            assert code in line, f"{doc.name}: [{text}]({target}): line {number[1]} of " \
                                 f"{file} is {line.strip()!r}, which does not hold {code!r}"


def test_the_tour_links_the_engine_in_three_jumps_and_the_readme_links_the_tour():
    targets = [target for _, target in code_links(TOUR)]
    for place in ("nets/training.py#L", "autodiff/transforms.py#L", "autodiff/core.py#L"):
        assert any(place in t for t in targets), place
    head = (ROOT / "README.md").read_text()[:1500]
    assert "(docs/how-it-works.md)" in head


def test_a_moved_line_fails_the_link_check(tmp_path):
    doc = tmp_path / "doc.md"
    (tmp_path / "code.py").write_text("a = 1\ndef backward():\n    pass\n")
    doc.write_text("[`backward`](code.py#L2) and [`backward`](code.py#L3)\n")
    links = code_links(doc)
    assert [anchored_code(t) in (tmp_path / "code.py").read_text().splitlines()[int(
        target.split("#L")[1]) - 1] for t, target in links] == [True, False]
