package hubtest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckpointTotals checks the builder against the published sizes of
// the real checkpoints (the FACTS.md files beside the configs).
func TestCheckpointTotals(t *testing.T) {
	for _, c := range []struct {
		dir     string
		bytes   int64
		tensors int
		shards  int
	}{
		{"Qwen--Qwen3-8B", 16_381_470_720, 399, 4},
		{"meta-llama--Llama-3.1-8B-Instruct", 16_060_522_496, 291, 4},
		{"openai--gpt-oss-20b", 13_761_264_768, 459, 3},
	} {
		cfg, err := os.ReadFile(filepath.Join(Configs(), c.dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		ts, err := TensorsFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		total := int64(0)
		for _, x := range ts {
			total += x.Bytes()
		}
		if total != c.bytes || len(ts) != c.tensors {
			t.Errorf("%s: %d bytes in %d tensors, published %d in %d", c.dir, total, len(ts), c.bytes, c.tensors)
		}
		files, err := Checkpoint(cfg)
		if err != nil {
			t.Fatal(err)
		}
		shards := 0
		for _, f := range files {
			if strings.HasSuffix(f.Path, ".safetensors") {
				shards++
				head := make([]byte, f.WeightsAt())
				f.ReadAt(head, 0)
				if !bytes.HasPrefix(head[8:], []byte(`{"__metadata__"`)) || len(head)%8 != 0 {
					t.Errorf("%s: %s head %q…", c.dir, f.Path, head[:min(40, len(head))])
				}
			}
		}
		if shards != c.shards {
			t.Errorf("%s: %d shards, want %d", c.dir, shards, c.shards)
		}
	}
}

// tinyModel is the suite's tiny real model ($GANTRY_TINY_MODEL).
func tinyModel(t testing.TB) string {
	p := os.Getenv("GANTRY_TINY_MODEL")
	if _, err := os.Stat(filepath.Join(p, "config.json")); p == "" || err != nil {
		t.Fatalf("GANTRY_TINY_MODEL (%q) is not the tiny model: ./test.sh makes it", p)
	}
	return p
}

type pyResult struct {
	Version string `json:"version"`
	Repos   []struct {
		ID       string `json:"id"`
		SHA      string `json:"sha"`
		Snapshot string `json:"snapshot"`
		Files    map[string]struct {
			SHA256  string `json:"sha256"`
			Size    int64  `json:"size"`
			Symlink bool   `json:"symlink"`
		} `json:"files"`
		Siblings []pyFile `json:"siblings"`
		Tree     []pyFile `json:"tree"`
		Head     *struct {
			Commit, Etag, Location string
			Size                   int64
		} `json:"head"`
		Safetensors *struct {
			Parameters map[string]int64 `json:"parameters"`
			Files      map[string]int   `json:"files"`
		} `json:"safetensors"`
	} `json:"repos"`
	Errors []struct {
		ID, Error, Message string
		Status             int
	} `json:"errors"`
	Cache struct {
		Warnings []string `json:"warnings"`
		Repos    []struct {
			ID        string   `json:"id"`
			Revisions []string `json:"revisions"`
			Refs      []string `json:"refs"`
			Files     int      `json:"files"`
		} `json:"repos"`
	} `json:"cache"`
}

type pyFile struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	BlobID    string `json:"blob_id"`
	LFSSHA256 string `json:"lfs_sha256"`
}

// runClient runs testdata/official_client.py with plan against s.
func runClient(t *testing.T, s *Server, plan map[string]any) pyResult {
	t.Helper()
	js, _ := json.Marshal(plan)
	cmd := exec.Command(Python(t), "testdata/official_client.py", string(js))
	cmd.Env = append(os.Environ(), "HF_ENDPOINT="+s.URL, "HF_HUB_DISABLE_TELEMETRY=1",
		"HF_HUB_DISABLE_PROGRESS_BARS=1", "HF_HOME="+t.TempDir(), "HF_TOKEN=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("official client: %v\n%s", err, stderr.String())
	}
	var res pyResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("official client's answer: %v\n%s", err, out)
	}
	return res
}

// TestOfficialClient proves the stand-in faithful: the official
// huggingface_hub client downloads every fixture repository from it
// (snapshot_download, the sparse shards left out), every file's sha256 is
// the one the Hub lists, get_safetensors_metadata reads each shard's
// header through Range requests, the errors come out as the client's own
// classes, a cut download resumes, and scan_cache_dir reads the cache.
func TestOfficialClient(t *testing.T) {
	s, err := New(Options{HashCache: HashCache()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commits, err := s.PushFixtures(Fixtures{TinyModel: tinyModel(t), Configs: Configs(), Scratch: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The tiny model's weights are cut mid-file once: the client must
	// resume with a Range request, not start over.
	s.CutNext("model.safetensors", 100_000)
	cache := t.TempDir()
	noShards := []string{"*.safetensors", "*.pth", "metal/*"}
	res := runClient(t, s, map[string]any{
		"cache": cache,
		"repos": []map[string]any{
			{"id": TinyRepo, "head": "model.safetensors"},
			{"id": GGUFRepo, "head": "tiny-llama-Q8_0.gguf"},
			{"id": QwenRepo, "ignore": noShards, "safetensors": true, "head": "config.json"},
			{"id": OSSRepo, "ignore": noShards, "safetensors": true},
			{"id": LlamaRepo, "ignore": noShards, "token": GatedToken, "safetensors": true, "revision": "main"},
		},
		"errors": []map[string]any{
			{"id": LlamaRepo, "file": "config.json"},
			{"id": LlamaRepo, "file": "config.json", "token": "hf_someoneelse"},
			{"id": "nobody/nothing"},
			{"id": QwenRepo, "revision": "v9.9"},
			{"id": QwenRepo, "file": "nothing.json"},
		},
	})
	t.Logf("huggingface_hub %s", res.Version)
	if len(res.Repos) != 5 {
		t.Fatalf("%d repositories downloaded", len(res.Repos))
	}
	for _, r := range res.Repos {
		if r.SHA != commits[r.ID] {
			t.Errorf("%s: commit %s, pushed %s", r.ID, r.SHA, commits[r.ID])
		}
		listed := map[string]pyFile{}
		for _, f := range r.Tree {
			listed[f.Path] = f
		}
		for _, f := range r.Siblings {
			if l := listed[f.Path]; l != f {
				t.Errorf("%s: model_info lists %+v, the tree %+v", r.ID, f, l)
			}
		}
		if len(r.Files) == 0 {
			t.Errorf("%s: nothing downloaded", r.ID)
		}
		for p, f := range r.Files {
			l, ok := listed[p]
			switch {
			case !ok:
				t.Errorf("%s: %s downloaded but not listed", r.ID, p)
			case l.LFSSHA256 != "" && l.LFSSHA256 != f.SHA256:
				t.Errorf("%s: %s has sha256 %s, the Hub lists %s", r.ID, p, f.SHA256, l.LFSSHA256)
			case l.Size != f.Size:
				t.Errorf("%s: %s has %d bytes, the Hub lists %d", r.ID, p, f.Size, l.Size)
			case !f.Symlink:
				t.Errorf("%s: %s is not a symlink into blobs/", r.ID, p)
			}
		}
		if r.Head != nil && r.Head.Commit != commits[r.ID] {
			t.Errorf("%s: HEAD says commit %s", r.ID, r.Head.Commit)
		}
	}
	tiny := res.Repos[0]
	if h := tiny.Head; h == nil || !strings.HasPrefix(h.Location, s.CDNURL) || h.Etag != listedSHA(tiny.Tree, "model.safetensors") {
		t.Errorf("tiny model's HEAD: %+v (want a redirect to the CDN and the sha256 as ETag)", tiny.Head)
	}
	size := tiny.Files["model.safetensors"].Size
	if got := s.ServedOf("model.safetensors"); got > size+chunk {
		t.Errorf("the cut download served %d bytes of a %d-byte file: it did not resume", got, size)
	}
	for i, want := range []struct{ class string }{{"GatedRepoError"}, {"GatedRepoError"}, {"RepositoryNotFoundError"},
		{"RevisionNotFoundError"}, {"RemoteEntryNotFoundError"}} {
		if i >= len(res.Errors) || res.Errors[i].Error != want.class {
			t.Errorf("error %d: %+v, want %s", i, res.Errors, want.class)
		}
	}
	wantParams := map[string]int64{QwenRepo: 8_190_735_360, OSSRepo: 0, LlamaRepo: 8_030_261_248}
	for _, r := range res.Repos[2:] {
		st := r.Safetensors
		if st == nil {
			t.Errorf("%s: no safetensors metadata", r.ID)
			continue
		}
		total := int64(0)
		for _, n := range st.Parameters {
			total += n
		}
		if w := wantParams[r.ID]; w > 0 && total != w {
			t.Errorf("%s: get_safetensors_metadata counts %d parameters, want %d (%v)", r.ID, total, w, st.Parameters)
		}
	}
	if len(res.Cache.Warnings) > 0 || len(res.Cache.Repos) != 5 {
		t.Errorf("scan_cache_dir: %+v", res.Cache)
	}
}

func listedSHA(fs []pyFile, p string) string {
	for _, f := range fs {
		if f.Path == p {
			return f.LFSSHA256
		}
	}
	return ""
}
