"""Whatever bytes a user points lockstep at, a loader answers with a LockError or a Lock.

Each format is forced on arbitrary text, on YAML-shaped text built from the keys and values
the formats use, and on real sample files mutated line by line, so every parser path meets
input it was not written for.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.locks import conda_lock
from producer.locks.detect import FORMATS, load_lock
from producer.locks.interface import LockError
from worker.models import Lock, LockedPackage

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(
    [
        *(DATA / "locks-for-prefix-good-pip").iterdir(),
        DATA / "prefix-good-pip.conda-list.json",
        DATA / "prefix-good-pip.explicit-md5.txt",
        DATA / "prefix-good-pip.export.txt",
        *(DATA / "public").glob("*/*"),
    ]
)
SAMPLE_LINES = [path.read_text().splitlines() for path in SAMPLES]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

KEYS = [
    "version", "metadata", "platforms", "channels", "url", "package", "name", "manager",
    "platform", "hash", "md5", "sha256", "dependencies", "category", "optional", "pip",
    "environments", "default", "packages", "linux-64", "conda", "pypi", "prefix", "indexes",
]  # fmt: skip
VALUES = [
    "", "1", "6", "7", "3.10", "~", "null", "{}", "[]", "[linux-64]", "conda", "pip",
    "linux-64", "osx-arm64", "'0.1'", '"x"', "&a", "*a", "!!bool false", "|", ">", "'open",
    "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda",
    "https://conda.anaconda.org/conda-forge/noarch/a-1-0.tar.bz2", "numpy=1.26.4=h_0",
    "- x", "{url: conda-forge}", "a: b", "# note", "d41d8cd98f00b204e9800998ecf8427e",
    "python >= 3.8, < 3.9", "-e ./src", "foo==1.0", "[", "]", "\t", "@EXPLICIT",
]  # fmt: skip

plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
yaml_line = st.builds(
    lambda indent, item, key, value: " " * indent + ("- " if item else "") + f"{key}: {value}",
    st.sampled_from([0, 0, 2, 4, 6]),
    st.booleans(),
    st.sampled_from(KEYS),
    st.sampled_from(VALUES) | st.text(max_size=12),
)
yaml_text = st.lists(yaml_line | st.sampled_from(VALUES), max_size=30).map("\n".join)


@st.composite
def mutated_sample(draw: st.DrawFn) -> str:
    lines = list(draw(st.sampled_from(SAMPLE_LINES)))
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate", "insert"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "replace":
            lines[index] = draw(yaml_line | st.sampled_from(VALUES))
        elif action == "truncate":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        else:
            lines.insert(index, draw(plain_text))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def check(path: Path, content: str | bytes, fmt: str) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        lock = load_lock(path, fmt=fmt, platform="linux-64")
    except LockError as error:
        assert str(error).startswith(str(path))
        assert error.line is None or error.line >= 1
    else:
        assert isinstance(lock, Lock)
        assert lock.packages and lock.format == fmt
        # Records are built without validation: whatever was read must still be a valid model.
        assert Lock.model_validate(lock.model_dump()) == lock
        for package in lock.packages:
            assert LockedPackage.model_validate(package.model_dump()) == package


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(content=plain_text | st.binary(max_size=200))
def test_arbitrary_text_raises_only_lock_errors(workdir: Path, fmt: str, content: str) -> None:
    check(workdir / f"arbitrary-{fmt}.lock", content, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(content=yaml_text)
def test_yaml_shaped_text_raises_only_lock_errors(workdir: Path, fmt: str, content: str) -> None:
    check(workdir / f"yamlish-{fmt}.yml", content, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(content=mutated_sample())
def test_mutated_samples_raise_only_lock_errors(workdir: Path, fmt: str, content: str) -> None:
    check(workdir / f"mutated-{fmt}.lock", content, fmt)


@SETTINGS
@given(content=mutated_sample())
def test_auto_detection_raises_only_lock_errors(workdir: Path, content: str) -> None:
    path = workdir / "detect.lock"
    path.write_text(content, encoding="utf-8")
    try:
        load_lock(path, platform="linux-64")
    except LockError as error:
        assert str(error).startswith(str(path))


CONDA_LOCK_SAMPLES = [
    lines
    for path, lines in zip(SAMPLES, SAMPLE_LINES, strict=True)
    if path.suffix == ".yml" and "package:" in lines
]


@st.composite
def mutated_conda_lock(draw: st.DrawFn) -> str:
    lines = list(draw(st.sampled_from(CONDA_LOCK_SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "replace":
            lines[index] = draw(yaml_line | st.sampled_from(VALUES))
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
    return "\n".join(lines)


def outcome(read: Callable[[], Lock]) -> Lock | str:
    try:
        return read()
    except LockError as error:
        return str(error)


@SETTINGS
@given(text=mutated_conda_lock(), platform=st.sampled_from(["linux-64", "linux-aarch64"]))
def test_conda_lock_line_scanner_agrees_with_the_yaml_composer(text: str, platform: str) -> None:
    """The fast path must read exactly what YAML reads, or step aside for the composer."""
    path = Path("conda-lock.yml")
    fast = conda_lock._load_fast(path, text)
    if fast is None:
        return

    def composed() -> Lock:
        root = conda_lock._root(path, text)
        return conda_lock._build(path, root, conda_lock._entries_from_nodes(path, root), platform)

    assert outcome(lambda: conda_lock._build(path, *fast, platform)) == outcome(composed)
