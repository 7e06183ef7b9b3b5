"""shard_of: stable across processes and versions, and always in range."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.shards import shard_of


def test_the_hash_is_crc32_of_the_utf8_ad_id() -> None:
    # 0xCBF43926 is CRC-32's published check value for b"123456789"; pinning it
    # (and a few ad ids) catches any change of hash, which would silently move
    # every ad to another shard while old minutes still sit in the old ones.
    assert shard_of("123456789", 2**32) == 0xCBF43926
    assert shard_of("ad-1", 2**32) == 2633266771
    assert shard_of("é", 2**32) == 235179326  # UTF-8 bytes c3 a9, not Latin-1


def test_known_ads_land_on_their_pinned_shards() -> None:
    assert [shard_of(ad, 8) for ad in ("ad-1", "0", "42", "ad_a", "é", "123456789")] == [
        3, 1, 0, 3, 6, 6]
    assert shard_of("ad-1", 1024) == 595


def test_the_shard_is_the_same_in_another_process() -> None:
    # The built-in hash() of str is salted per process; this would catch its use.
    ads = ["ad-1", "campaign/7", "ünïcode", "x" * 64]
    code = ("import sys; from farloom_tasks.core.shards import shard_of; "
            "print(','.join(str(shard_of(a, 97)) for a in sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, *ads], capture_output=True,
                            text=True, timeout=60, check=True,
                            env={"PYTHONHASHSEED": "12345"})
    assert result.stdout.strip() == ",".join(str(shard_of(a, 97)) for a in ads)


@given(st.text(min_size=1, max_size=64), st.integers(min_value=1, max_value=1024))
def test_every_ad_maps_to_one_shard_in_range(ad_id: str, shard_count: int) -> None:
    try:
        ad_id.encode("utf-8")
    except UnicodeEncodeError:
        return  # unpaired surrogates never pass click validation
    shard = shard_of(ad_id, shard_count)
    assert 0 <= shard < shard_count
    assert shard_of(ad_id, shard_count) == shard


@given(st.text(min_size=1, max_size=64, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_one_shard_means_shard_zero(ad_id: str) -> None:
    assert shard_of(ad_id, 1) == 0
