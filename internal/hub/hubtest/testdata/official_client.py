"""Drives the official huggingface_hub client (the version ./test.sh pins)
against the stand-in Hub at HF_ENDPOINT, and prints what it got as JSON.

argv[1] is a JSON plan: {"cache": DIR, "repos": [{"id", "revision",
"allow", "ignore", "token", "safetensors": bool}], "errors": [{"id",
"revision", "token", "file"}]}.
"""
import hashlib
import json
import os
import sys

import huggingface_hub
from huggingface_hub import (HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url,
                             scan_cache_dir, snapshot_download)

plan = json.loads(sys.argv[1])
api = HfApi()
out = {"version": huggingface_hub.__version__, "repos": [], "errors": []}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


for r in plan["repos"]:
    token = r.get("token") or False
    info = api.model_info(r["id"], revision=r.get("revision"), files_metadata=True, token=token)
    snap = snapshot_download(r["id"], revision=r.get("revision"), cache_dir=plan["cache"],
                             allow_patterns=r.get("allow"), ignore_patterns=r.get("ignore"), token=token)
    files = {}
    for root, _, names in os.walk(snap):
        for n in names:
            p = os.path.join(root, n)
            files[os.path.relpath(p, snap)] = {"sha256": sha256(p), "size": os.path.getsize(p),
                                               "symlink": os.path.islink(p)}
    res = {
        "id": r["id"], "sha": info.sha, "snapshot": snap, "files": files,
        "siblings": [{"path": s.rfilename, "size": s.size, "blob_id": s.blob_id,
                      "lfs_sha256": s.lfs.sha256 if s.lfs else None} for s in info.siblings],
        "tree": [{"path": f.path, "size": f.size, "blob_id": f.blob_id,
                  "lfs_sha256": f.lfs.sha256 if f.lfs else None}
                 for f in api.list_repo_tree(r["id"], revision=info.sha, recursive=True, token=token)
                 if hasattr(f, "blob_id")],
    }
    if r.get("head"):
        m = get_hf_file_metadata(hf_hub_url(r["id"], r["head"], revision=r.get("revision")), token=token)
        res["head"] = {"commit": m.commit_hash, "etag": m.etag, "size": m.size, "location": m.location}
    if r.get("safetensors"):
        st = api.get_safetensors_metadata(r["id"], revision=info.sha, token=token)
        res["safetensors"] = {"parameters": st.parameter_count,
                              "files": {n: len(f.tensors) for n, f in st.files_metadata.items()}}
    out["repos"].append(res)

for e in plan.get("errors", []):
    try:
        if e.get("file"):
            # a cache of its own: the client answers from its cache when the
            # Hub refuses, and the first cache holds the gated files
            hf_hub_download(e["id"], e["file"], revision=e.get("revision"), cache_dir=plan["cache"] + "-errors",
                            token=e.get("token") or False)
        else:
            api.model_info(e["id"], revision=e.get("revision"), token=e.get("token") or False)
        out["errors"].append({"id": e["id"], "error": None})
    except Exception as ex:  # the class is what the test checks
        status = getattr(getattr(ex, "response", None), "status_code", None)
        out["errors"].append({"id": e["id"], "error": type(ex).__name__, "status": status,
                              "message": str(ex).splitlines()[0] if str(ex) else ""})

cache = scan_cache_dir(plan["cache"])
out["cache"] = {"warnings": [str(w) for w in cache.warnings],
                "repos": sorted([{"id": r.repo_id, "revisions": sorted(v.commit_hash for v in r.revisions),
                                  "refs": sorted(ref for v in r.revisions for ref in v.refs),
                                  "files": sum(len(v.files) for v in r.revisions)} for r in cache.repos],
                               key=lambda x: x["id"])}
print(json.dumps(out))
