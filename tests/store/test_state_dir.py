from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rollwise.platforms.local.store import (
    StateDirError,
    TokenPermissionError,
    ensure_state_dir,
    ensure_token,
    read_token,
    token_path,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = ensure_state_dir(tmp_path / "a" / "state")
    finally:
        os.umask(old)
    assert path.is_dir() and mode(path) == 0o700
    assert ensure_state_dir(path) == path  # existing: fine


def test_state_dir_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateDirError, match="not a directory"):
        ensure_state_dir(tmp_path / "file")


def test_token_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    state = tmp_path / "state"
    token = ensure_token(state)
    assert mode(token_path(state)) == 0o600
    assert len(token) >= 43  # 32 random bytes, base64url
    assert ensure_token(state) == token == read_token(state)
    assert [p.name for p in state.iterdir()] == ["token"]  # no temporary file left behind


def test_a_token_readable_by_others_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ensure_token(state)
    path = token_path(state)
    path.chmod(0o644)
    with pytest.raises(TokenPermissionError) as caught:
        read_token(state)
    assert str(caught.value) == (
        f"{path} has mode 0644, but the API token must be readable by its owner only (mode 0600); run: chmod 600 {path}"
    )
    with pytest.raises(TokenPermissionError):
        ensure_token(state)  # never silently replaced or reused either


def test_missing_empty_and_symlinked_tokens(tmp_path: Path) -> None:
    state = ensure_state_dir(tmp_path / "state")
    with pytest.raises(StateDirError, match="no API token"):
        read_token(state)
    real = tmp_path / "elsewhere"
    real.write_text("secret")
    real.chmod(0o600)
    token_path(state).symlink_to(real)
    with pytest.raises(StateDirError, match="cannot open"):
        read_token(state)
    token_path(state).unlink()
    token_path(state).touch(mode=0o600)
    with pytest.raises(StateDirError, match="empty"):
        read_token(state)
