import random

from sunpy_archives.core.errors import ArchiveError, BadInputError, QuerySyntaxError
from sunpy_archives.core.http import BACKOFF_CAP, MAX_RETRY_AFTER, parse_retry_after, retry_delay


def test_retry_after_seconds_and_cap():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == MAX_RETRY_AFTER
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_retry_after_http_date_in_the_past_is_zero():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_backoff_grows_and_is_capped():
    rng = random.Random(1)
    delays = [retry_delay(n, rng=rng) for n in range(12)]
    assert delays[0] < delays[3] < delays[6]
    assert max(delays) <= BACKOFF_CAP
    assert retry_delay(5, "2") == 2.0


def test_errors_name_archive_and_url_and_bad_input_is_valueerror():
    err = BadInputError("bad level", archive="SPICE", url="http://x/y")
    assert isinstance(err, ValueError) and isinstance(err, ArchiveError)
    assert str(err) == "SPICE: bad level (URL: http://x/y)"
    q = QuerySyntaxError("unexpected token", expression="A == == 1", position=5)
    assert "A == == 1" in str(q) and "\n         ^" in str(q)
