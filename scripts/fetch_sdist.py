"""Download one sdist from the package index and check its sha256.

``pip download`` cannot be used for ``pb1-detectron2``: its metadata declares a direct-URL extra
dependency, which pip rejects for distributions from the index, and its setup.py imports torch.
This reads the index's simple (PEP 503) page for the project instead, the same page pip reads.

Usage: python scripts/fetch_sdist.py PROJECT VERSION SHA256 DEST_FILE
"""

import hashlib
import html.parser
import os
import subprocess
import sys
import urllib.parse
import urllib.request


def index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
        )
        url = out.stdout.strip() if out.returncode == 0 else ""
    if not url:
        from pip._internal.models.index import PyPI  # pip's own default index

        url = PyPI.simple_url
    return url.rstrip("/") + "/"


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href"]


def main(project: str, version: str, sha256: str, dest: str) -> None:
    page_url = urllib.parse.urljoin(index_url(), project + "/")
    with urllib.request.urlopen(page_url, timeout=120) as r:
        parser = _Links()
        parser.feed(r.read().decode("utf-8"))
    wanted = {f"{project}-{version}.tar.gz", f"{project.replace('-', '_')}-{version}.tar.gz"}
    links = [h for h in parser.hrefs if os.path.basename(urllib.parse.urlsplit(h).path) in wanted]
    if not links:
        sys.exit(f"fetch_sdist: no {sorted(wanted)} on {page_url}")
    url = urllib.parse.urljoin(page_url, links[0]).split("#")[0]
    with urllib.request.urlopen(url, timeout=300) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        sys.exit(f"fetch_sdist: sha256 of {url} is {got}, expected {sha256}; not saved")
    tmp = dest + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)
    print(f"[setup] downloaded {os.path.basename(dest)} ({len(data) // 1024} kB, sha256 ok)")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
