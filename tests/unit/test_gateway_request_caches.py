"""The small caches and shortcuts on the gateway's per-request path give what the uncached
code gives, stay bounded, and never hand one input's answer to another."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import formatdate

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from prometheus_client import generate_latest

from gateway.anonymous import is_anonymous
from gateway.auth import sigv4
from gateway.metrics import GatewayMetrics
from gateway.middleware import _check_header_limits
from gateway.unsupported import check_expected_owner
from gateway.xml import _http_date, http_date
from objstore.errors import AccessDenied, MetadataTooLarge, RequestHeaderSectionTooLarge


def test_signed_header_names_are_split_lowered_and_kept_in_order() -> None:
    assert sigv4.signed_header_names("Host;X-Amz-Date; x-amz-content-sha256 ;;") == (
        "host", "x-amz-date", "x-amz-content-sha256")
    assert sigv4.signed_header_names("host;x-amz-date") != sigv4.signed_header_names("host;x-amz-meta-a")


def test_long_signed_header_lists_are_not_cached() -> None:
    names = ";".join(f"x-amz-meta-h{i:04d}" for i in range(100))
    assert len(names) > sigv4.MAX_CACHED_SIGNED_HEADERS
    before = sigv4._signed_names_cached.cache_info().currsize
    assert sigv4.signed_header_names(names) == tuple(names.split(";"))
    assert sigv4._signed_names_cached.cache_info().currsize == before


def test_request_caches_are_bounded() -> None:
    for cached in (sigv4._signed_names_cached, sigv4._amz_text, sigv4._amz_time, sigv4.signing_key, _http_date):
        assert cached.cache_info().maxsize is not None and cached.cache_info().maxsize <= 4096
    for i in range(300):
        sigv4.signed_header_names(f"host;x-amz-h{i}")
    assert sigv4._signed_names_cached.cache_info().currsize <= 256


def test_signing_key_changes_with_secret_date_region_and_service() -> None:
    key = sigv4.signing_key("secret-a", "20260101", "us-east-1", "s3")
    assert key == sigv4.signing_key("secret-a", "20260101", "us-east-1", "s3")
    others = {sigv4.signing_key("secret-b", "20260101", "us-east-1", "s3"),
              sigv4.signing_key("secret-a", "20260102", "us-east-1", "s3"),
              sigv4.signing_key("secret-a", "20260101", "eu-west-1", "s3"),
              sigv4.signing_key("secret-a", "20260101", "us-east-1", "iam")}
    assert key not in others and len(others) == 4


def test_amz_date_text_is_the_strftime_of_the_same_utc_time() -> None:
    when = datetime(2026, 12, 3, 12, 30, 5, tzinfo=timezone.utc)
    assert sigv4._amz_text(when) == "20261203T123005Z"
    assert sigv4._amz_text(when + timedelta(seconds=1)) == "20261203T123006Z"


def _date_header_request(date_header: str) -> sigv4.ParsedRequest:
    headers = {"Host": "h", "Date": date_header, "x-amz-content-sha256": sigv4.UNSIGNED_PAYLOAD,
               "Authorization": "AWS4-HMAC-SHA256 Credential=AK/20261203/us-east-1/s3/aws4_request, "
                                "SignedHeaders=date;host, Signature=00"}
    return sigv4.parse_request("GET", "/b/k", "", headers, datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc))


def test_a_date_header_in_another_zone_writes_its_own_fields_not_a_cached_utc_text() -> None:
    # The same instant, first in UTC (cached), then as +0200: the string to sign keeps what
    # strftime writes for the time as given, as it did before the cache.
    assert _date_header_request("Thu, 03 Dec 2026 12:00:00 GMT").amz_date == "20261203T120000Z"
    assert _date_header_request("Thu, 03 Dec 2026 14:00:00 +0200").amz_date == "20261203T140000Z"


def test_http_date_is_formatdate_of_the_whole_second() -> None:
    for ts in (0.0, 1764763805.999, 1764763806.0, 2000000000.5):
        assert http_date(ts) == formatdate(int(ts), usegmt=True)


def test_every_unsigned_amz_header_is_still_named_in_order() -> None:
    hdrs = {"host": ["h"], "x-amz-date": ["d"], "x-amz-meta-b": ["1"], "x-amz-meta-a": ["2"],
            "x-amz-content-sha256": ["UNSIGNED-PAYLOAD"]}
    sigv4.check_all_signed(hdrs, ("host", "x-amz-date", "x-amz-meta-a", "x-amz-meta-b"))
    with pytest.raises(AccessDenied) as err:
        sigv4.check_all_signed(hdrs, ("host", "x-amz-date"))
    assert err.value.extra["HeadersNotSigned"] == "x-amz-meta-a, x-amz-meta-b"


def test_is_anonymous_reads_the_authorization_header_in_any_case() -> None:
    assert not is_anonymous(CIMultiDict({"authorization": "x"}), {})
    assert not is_anonymous({"AUTHORIZATION": "x"}, {})  # a plain dict: names as sent
    assert not is_anonymous({"Authorization": "x"}, {})
    assert is_anonymous({"Host": "h"}, {})
    assert not is_anonymous({"Host": "h"}, {"X-Amz-Signature": "s"})


def test_expected_owner_headers_are_checked_in_any_case_the_last_value_counting() -> None:
    check_expected_owner({"Host": "h"}, "me")
    check_expected_owner({"X-Amz-Expected-Bucket-Owner": " me "}, "me")
    with pytest.raises(AccessDenied) as err:
        check_expected_owner({"x-amz-source-expected-bucket-owner": "other"}, "me")
    assert err.value.extra["Header"] == "x-amz-source-expected-bucket-owner"
    headers = CIMultiDict([("x-amz-expected-bucket-owner", "other"), ("X-Amz-Expected-Bucket-Owner", "me")])
    check_expected_owner(headers, "me")  # a dict of the lower-cased headers kept the last value


def test_header_limits_count_user_metadata_only_when_there_is_some() -> None:
    _check_header_limits(make_mocked_request("PUT", "/b/k", headers=CIMultiDict({"Host": "h"})))
    big = CIMultiDict({"Host": "h", "X-Amz-Meta-Big": "v" * 2100})
    with pytest.raises(MetadataTooLarge):
        _check_header_limits(make_mocked_request("PUT", "/b/k", headers=big))
    huge = CIMultiDict({"Host": "h", "x-other": "v" * 17000})
    with pytest.raises(RequestHeaderSectionTooLarge):
        _check_header_limits(make_mocked_request("PUT", "/b/k", headers=huge))


def test_requests_in_flight_gauge_shows_the_requests_being_served() -> None:
    metrics = GatewayMetrics()
    metrics.serving += 3
    assert b"objstore_s3_requests_in_flight 3.0" in generate_latest(metrics.registry)
    metrics.serving -= 3
    assert b"objstore_s3_requests_in_flight 0.0" in generate_latest(metrics.registry)


def test_reads_by_consistency_count_known_levels_only() -> None:
    metrics = GatewayMetrics()
    for level in ("strong", "strong", "one", None, "bogus"):
        metrics.observe_consistency(level)
    text = generate_latest(metrics.registry).decode()
    assert 'objstore_s3_reads_by_consistency_total{level="strong"} 2.0' in text
    assert 'objstore_s3_reads_by_consistency_total{level="one"} 1.0' in text
    assert 'objstore_s3_reads_by_consistency_total{level="quorum"} 0.0' in text
    assert "bogus" not in text
