"""Server tokens: the length rule beyond loopback, new token files (0600, never overwritten) and
the warning for a token file other users may open."""

from __future__ import annotations

import os
import re
import stat
import warnings

import pytest

from emviewer.core.errors import InputError, InputWarning
from emviewer.server.settings import ServerSettings, new_token, read_token, write_new_token

URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")


@pytest.fixture
def open_umask():
    """Umask 0 while the test runs: a file's mode is then what its writer asked ``open(2)`` for."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "lab-gpu.example.org"])
def test_a_token_under_the_minimum_is_refused_beyond_loopback(host):
    with pytest.raises(InputError) as caught:
        ServerSettings(host=host, token="x" * 15).check()
    message = str(caught.value)
    assert "\n" not in message
    assert f"refusing to serve on {host} with a 15-character token (16+" in message
    assert message.endswith("make one with: emviewer serve --new-token FILE")
    ServerSettings(host=host, token="x" * 16).check()


def test_the_minimum_is_the_settings_own():
    with pytest.raises(InputError, match="32-character token \\(40\\+"):
        ServerSettings(host="0.0.0.0", token="x" * 32, min_token_length=40).check()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
@pytest.mark.parametrize("token", [None, "a", "short"])
def test_loopback_allows_any_token(host, token):
    ServerSettings(host=host, token=token).check()


def test_no_token_beyond_loopback_says_how_to_make_one():
    with pytest.raises(InputError, match="without a token: .*; make one with: emviewer serve --new-token FILE"):
        ServerSettings(host="0.0.0.0").check()


def test_new_tokens_are_long_random_url_safe_and_never_look_like_an_option():
    tokens = [new_token() for _ in range(500)]  # ~1 in 64 would start with "-" if not avoided
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert len(token) >= 32 and URL_SAFE.fullmatch(token) and not token.startswith("-")


def test_a_new_token_file_is_created_owner_only(tmp_path, open_umask):
    path = tmp_path / "token"
    assert write_new_token(path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # umask 0: the mode is the one the writer chose
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file made this way gives no permission warning
        token = read_token(str(path))
    assert token == text.strip() and len(token) >= 32
    ServerSettings(host="0.0.0.0", token=token).check()


def test_a_new_token_never_overwrites_a_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("the old token, still in use\n")
    with pytest.raises(InputError, match="already exists; not overwritten"):
        write_new_token(path)
    assert path.read_text() == "the old token, still in use\n"


def test_a_new_token_is_not_written_through_a_link(tmp_path):
    """A link planted where the token goes must not make us write (or create) its target."""
    target = tmp_path / "elsewhere" / "planted"
    target.parent.mkdir()
    link = tmp_path / "token"
    link.symlink_to(target)
    with pytest.raises(InputError, match="already exists"):
        write_new_token(link)
    assert not target.exists()


def test_a_new_token_in_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(InputError, match="cannot create the token file") as caught:
        write_new_token(tmp_path / "no-such-folder" / "token")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_may_open_is_warned_of(tmp_path, mode):
    path = tmp_path / "token"
    path.write_text("a-token-of-enough-characters\n")
    path.chmod(mode)
    with pytest.warns(InputWarning) as caught:
        assert read_token(str(path)) == "a-token-of-enough-characters"
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and message.startswith(f"{path}: other users may open the token file (mode {mode:o})")


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_an_owner_only_token_file_gives_no_warning(tmp_path, mode):
    path = tmp_path / "token"
    path.write_text("a-token-of-enough-characters\n")
    path.chmod(mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_token(str(path)) == "a-token-of-enough-characters"
