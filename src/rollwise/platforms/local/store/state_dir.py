"""The state directory and the API bearer token in it.

The token is the only thing between any local user and the control plane's API, so its file must
be readable by its owner alone: a token file with wider permissions is refused rather than used,
since another user may already have read it."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from rollwise.platforms.local.store.errors import StoreError

DIR_MODE = 0o700
TOKEN_MODE = 0o600
TOKEN_FILE = "token"
DB_FILE = "state.db"


class StateDirError(StoreError):
    pass


class TokenPermissionError(StateDirError):
    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(
            f"{path} has mode {mode:04o}, but the API token must be readable by its owner only "
            f"(mode 0600); run: chmod 600 {path}"
        )
        self.path, self.mode = path, mode


def ensure_state_dir(path: Path) -> Path:
    """Create the state dir with mode 0700. An existing directory keeps its mode: it may be one the
    user chose and shares (chmod-ing it would be a surprise); the files in it are private anyway."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise StateDirError(f"{path} exists and is not a directory") from None
    else:
        # mkdir's mode is filtered through the umask; make sure it is exactly 0700.
        os.chmod(path, DIR_MODE)
    return path


def db_path(state_dir: Path) -> Path:
    return state_dir / DB_FILE


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def ensure_token(state_dir: Path) -> str:
    """The token in `<state_dir>/token`, generated on first use. Two daemons starting at once agree
    on one token: the file appears complete in one step (link of a private temporary file), and the
    loser reads the winner's."""
    ensure_state_dir(state_dir)
    path = token_path(state_dir)
    if not path.exists():
        token = secrets.token_urlsafe(32)
        tmp = state_dir / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, TOKEN_MODE)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(token + "\n")
                f.flush()
                os.fsync(f.fileno())
            # link, unlike rename, fails if the token appeared meanwhile, so an existing one is never replaced.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return read_token(state_dir)


def read_token(state_dir: Path) -> str:
    path = token_path(state_dir)
    try:
        # O_NOFOLLOW and fstat on the open file: the mode checked is the mode of the file read, with
        # no window for it to be swapped for a symlink between the check and the read.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise StateDirError(f"no API token at {path}; start the control plane with rollwise up") from None
    except OSError as exc:
        raise StateDirError(f"cannot open the API token {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r", encoding="ascii") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StateDirError(f"{path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenPermissionError(path, mode)
        if info.st_uid != os.getuid():
            raise StateDirError(f"{path} is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})")
        try:
            token = f.read().strip()
        except UnicodeDecodeError:
            token = ""
    if not token or not token.isascii():
        raise StateDirError(f"{path} is empty or not a token; delete it and run rollwise up to make a new one")
    return token
