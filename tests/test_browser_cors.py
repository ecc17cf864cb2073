"""CORS as a browser enforces it: a page in headless Chromium, served from another origin,
uploads to and reads from s3facade with fetch through presigned URLs. The bucket whose
rules name the page's origin lets it; a bucket without rules makes the browser refuse."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from lxml import html as lxml_html

from tests.access_server import (
    Clients,
)
from tests.browser import page_origin, rendered_dom

PAGE = """<!doctype html>
<html><body><pre id="out">pending</pre><script>
const results = {};
async function attempt(name, url, init, read) {
  try {
    const reply = await fetch(url, init);
    results[name] = {status: reply.status, etag: reply.headers.get("ETag"),
                     body: read ? await reply.text() : null};
  } catch (error) {
    results[name] = {blocked: String(error)};
  }
}
(async () => {
  await attempt("put", %(put)s, {method: "PUT", body: "from the browser",
                                 headers: {"Content-Type": "text/plain"}}, false);
  await attempt("get", %(get)s, {method: "GET"}, true);
  await attempt("refused", %(refused)s, {method: "PUT", body: "must not land",
                                         headers: {"Content-Type": "text/plain"}}, false);
  document.getElementById("out").textContent = JSON.stringify(results);
})();
</script></body></html>
"""


def test_a_page_on_another_origin_uploads_only_where_cors_allows(users: Clients) -> None:
    alice = users.alice
    allowed, closed = users.bucket(alice), users.bucket(alice)
    with page_origin() as page:
        alice.put_bucket_cors(
            Bucket=allowed,
            CORSConfiguration={
                "CORSRules": [
                    {
                        "AllowedOrigins": [page.origin],
                        "AllowedMethods": ["GET", "PUT"],
                        "AllowedHeaders": ["*"],
                        "ExposeHeaders": ["ETag"],
                    }
                ]
            },
        )

        def url(method: str, bucket: str, key: str) -> str:
            return json.dumps(
                alice.generate_presigned_url(method, Params={"Bucket": bucket, "Key": key})
            )

        page.html = PAGE % {
            "put": url("put_object", allowed, "from-browser.txt"),
            "get": url("get_object", allowed, "from-browser.txt"),
            "refused": url("put_object", closed, "refused.txt"),
        }
        dom = rendered_dom(page.origin + "/")
    out = lxml_html.fromstring(dom).get_element_by_id("out").text_content()
    results = json.loads(out)
    assert results["put"].get("status") == 200, results
    assert results["put"]["etag"], "ETag is exposed by the rule, so the page can read it"
    assert results["get"] == {"status": 200, "etag": results["put"]["etag"],
                              "body": "from the browser"}  # fmt: skip
    assert "blocked" in results["refused"], results
    stored = alice.get_object(Bucket=allowed, Key="from-browser.txt")
    assert stored["Body"].read() == b"from the browser"
    with pytest.raises(ClientError):  # the preflight failed: the browser never sent the PUT
        alice.head_object(Bucket=closed, Key="refused.txt")
