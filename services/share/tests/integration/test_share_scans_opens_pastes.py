"""Stats tell scans from opens from pastes (issue 17), through the real gateway: a visit of the
poster's QR URL (``?src=qr``) is a scan, the plain link an open, a pasted code a paste — on both
landing pages (``/s/<code>`` and ``/classic/s/<code>``)."""

import requests
from test_share_flow import KEEPER, a_shared_product, stats

from shared.testing import wait_for


def test_scans_opens_and_pastes_are_counted_apart_by_day_and_by_share(platform):
    share = a_shared_product(platform)
    other = a_shared_product(platform, product_id=102)
    assert share["qr_url"] == share["url"] + "?src=qr"
    classic = share["url"].replace("/s/", "/classic/s/")
    visits = [
        (share["qr_url"], {}),  # scans: the web landing page ...
        (classic + "?src=qr", {}),  # ... and the classic one
        (share["qr_url"], {}),
        (share["url"], {}),  # opens of the plain link, both pages
        (classic, {}),
        (other["url"], {}),
    ]
    for i, (url, params) in enumerate(visits):
        resp = requests.get(url, params=params, cookies=_visitor(platform, i), timeout=20)
        assert resp.status_code == 200, (url, resp.status_code)
    pasted = requests.get(
        f"{platform.url}/api/v1/shares/resolve",
        params={"code": f"复制 ￥{share['code']}￥ 打开"},
        cookies=_visitor(platform, 99),
        timeout=20,
    )
    assert pasted.status_code == 200, pasted.text

    result = wait_for(lambda: (s := stats(platform))["totals"]["visits"] >= 7 and s, timeout=30)
    platform.drained()
    result = stats(platform)
    assert result["totals"]["visits"] == 7
    assert {k: result["totals"][k] for k in ("scans", "opens", "pastes")} == {
        "scans": 3,
        "opens": 3,
        "pastes": 1,
    }
    (day,) = result["by_day"]
    assert (day["scans"], day["opens"], day["pastes"], day["visits"]) == (3, 3, 1, 7)
    by_share = {s["share_id"]: s for s in result["by_share"]}
    first, second = by_share[share["id"]], by_share[other["id"]]
    assert (first["scans"], first["opens"], first["pastes"], first["visits"]) == (3, 2, 1, 6)
    assert (second["scans"], second["opens"], second["pastes"], second["visits"]) == (0, 1, 0, 1)
    assert first["code"] == share["code"] and "conversion" in first  # existing fields stay
    assert KEEPER


def _visitor(platform, i):
    return platform.gateway.visitor_cookie(f"visitor-{i:02d}".ljust(22, "x"))
