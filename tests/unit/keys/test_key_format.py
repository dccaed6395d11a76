import zlib

import pytest

from apps.keys.key_format import (
    ALPHABET,
    KEY_LENGTH,
    KEY_PATTERN,
    checksum,
    lookup_id_of,
    new_key,
    random_base62,
)


def _base62_to_int(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + ALPHABET.index(char)
    return value


def test_a_new_key_ends_in_the_crc32_of_the_rest_in_base62():
    key = new_key("abcdefghijkl")
    body, check = key[:-6], key[-6:]
    assert len(key) == KEY_LENGTH == 56
    assert key.startswith("ut_abcdefghijkl_")
    assert _base62_to_int(check) == zlib.crc32(body.encode())


def test_checksum_is_left_padded_to_six_characters():
    # CRC32 fits in six base62 digits (62**6 > 2**32); small values are padded with "0".
    assert 62**6 > 2**32
    for body in ("", "a", "ut_x"):
        assert len(checksum(body)) == 6
    assert checksum("") == "000000"  # crc32("") is 0


def test_lookup_id_of_a_well_formed_key():
    key = new_key("LOOKUP123456")
    assert lookup_id_of(key) == "LOOKUP123456"


@pytest.mark.parametrize(
    "raw",
    [
        "ut_" + "a" * 12 + "_" + "b" * 40,  # right shape, wrong checksum
        "ut_short",
        "sk-" + "a" * 53,
        "",
    ],
)
def test_malformed_keys_have_no_lookup_id(raw):
    assert lookup_id_of(raw) is None


def test_every_single_character_change_is_caught():
    key = new_key("abcdefghijkl")
    for position in range(3, len(key)):
        if key[position] == "_":
            continue
        replacement = "0" if key[position] != "0" else "1"
        changed = key[:position] + replacement + key[position + 1 :]
        assert lookup_id_of(changed) is None, position


def test_scanner_pattern_finds_keys_in_text_and_not_lookalikes():
    key = new_key(random_base62(12))
    text = f"export UNTRACE_KEY={key}\nother=ut_{'x' * 12}_short"
    assert KEY_PATTERN.findall(text) == [key]
