package gateway

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strings"
)

// upload relays a multipart/form-data request (audio to transcribe, an
// image to edit) to the engine its "model" field names. The upload is
// copied part by part into a temporary file — not memory — with the model
// field said as the engine knows it, then sent from there with its length.
func (g *Gateway) upload(w http.ResponseWriter, r *http.Request) {
	q := g.begin(w, r)
	defer g.finish(q)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		openAIError(q, http.StatusBadRequest, "multipart_required", r.URL.Path+" takes multipart/form-data with a model field and the file")
		return
	}
	cfg := g.sched.Config()
	limit := int64(cfg.MaxBody)
	if r.ContentLength > limit {
		openAIError(q, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("the upload is over max_body (%s)", cfg.MaxBody))
		return
	}
	spool, err := os.CreateTemp("", "gantry-upload-*")
	if err != nil {
		openAIError(q, http.StatusInternalServerError, "spool", "cannot keep the upload: "+err.Error())
		return
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	in := multipart.NewReader(http.MaxBytesReader(nil, r.Body, limit), params["boundary"])
	out := multipart.NewWriter(spool)
	// Every part is copied as it comes, but the model's: it is written last,
	// as the engine knows the model (an alias or preset resolved).
	var name string
	var modelHeader map[string][]string
	for {
		p, err := in.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			a := bodyError(err)
			openAIError(q, a.Status, a.Code, "the upload is not valid multipart: "+err.Error())
			return
		}
		if p.FormName() == "model" {
			b, _ := io.ReadAll(io.LimitReader(p, 512))
			name, modelHeader = strings.TrimSpace(string(b)), p.Header
			continue
		}
		if err := writePart(out, p.Header, p); err != nil {
			a := bodyError(err)
			openAIError(q, a.Status, a.Code, "could not read the upload: "+err.Error())
			return
		}
	}
	if p, ok := pinOf(r); ok {
		name = g.pinned(p, name)
		if modelHeader == nil {
			modelHeader = textproto.MIMEHeader{"Content-Disposition": {`form-data; name="model"`}}
		}
	}
	if name == "" {
		openAIError(q, http.StatusBadRequest, "model_missing", `the upload has no "model" field; known models: `+g.sched.KnownNames())
		return
	}
	target, _ := g.resolvePreset(name)
	if x := q.act(); x != nil {
		x.asked = name
	}
	lease := g.lease(q, target)
	if lease == nil {
		return
	}
	defer lease.Release()
	if err := writePart(out, modelHeader, strings.NewReader(lease.Model.ServedName())); err != nil {
		openAIError(q, http.StatusInternalServerError, "spool", err.Error())
		return
	}
	if err := out.Close(); err != nil {
		openAIError(q, http.StatusInternalServerError, "spool", err.Error())
		return
	}
	size, err := spool.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = spool.Seek(0, io.SeekStart)
	}
	if err != nil {
		openAIError(q, http.StatusInternalServerError, "spool", err.Error())
		return
	}
	h := r.Header.Clone()
	h.Set("Content-Type", out.FormDataContentType())
	resp, err := g.up.sendBody(engineAddr(lease.BaseURL), r, r.Method, r.URL.RequestURI(), h, outBody{stream: spool, n: size})
	if err != nil {
		if !q.gone() {
			g.upstreamDead(q, lease, err)
		}
		return
	}
	defer resp.Body.Close()
	g.writeHead(q, resp, lease)
	g.copyBody(q, resp, lease, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
}

func writePart(w *multipart.Writer, header map[string][]string, body io.Reader) error {
	pw, err := w.CreatePart(header)
	if err != nil {
		return err
	}
	_, err = io.Copy(pw, body)
	return err
}

// upstreamRelay relays any request under /upstream/{model}/ to that
// model's engine (starting it when needed), for engine-specific endpoints:
// /tokenize, /detokenize, llama.cpp's /infill and /slots, SGLang's
// /get_server_info. It needs an admin key: these routes can change an
// engine's state.
func (g *Gateway) upstreamRelay(w http.ResponseWriter, r *http.Request) {
	q := g.begin(w, r)
	defer g.finish(q)
	if x := q.act(); x != nil {
		x.asked = r.PathValue("model")
	}
	uri, ok := upstreamTarget(r)
	if !ok {
		openAIError(q, http.StatusBadRequest, "bad_path", fmt.Sprintf(
			"the path %s holds a control character or a space: an engine's request line cannot carry it", quote(r.URL.EscapedPath())))
		return
	}
	lease := g.lease(q, r.PathValue("model"))
	if lease == nil {
		return
	}
	defer lease.Release()
	body := outBody{stream: r.Body, n: r.ContentLength}
	if r.ContentLength < 0 {
		b, held, err := g.readBody(r)
		defer g.bodies.Add(-held)
		if err != nil {
			a := bodyError(err)
			openAIError(q, a.Status, a.Code, err.Error())
			return
		}
		body = outBody{bytes: b}
	} else if r.ContentLength > int64(g.sched.Config().MaxBody) {
		openAIError(q, http.StatusRequestEntityTooLarge, "request_too_large", "the body is over max_body")
		return
	}
	resp, err := g.up.sendBody(engineAddr(lease.BaseURL), r, r.Method, uri, r.Header, body)
	if err != nil {
		if !q.gone() && !errors.Is(err, io.ErrUnexpectedEOF) {
			g.upstreamDead(q, lease, err)
		}
		return
	}
	defer resp.Body.Close()
	g.writeHead(q, resp, lease)
	g.copyBody(q, resp, lease, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"))
}

// upstreamTarget is the engine's request target of a request under
// /upstream/{model}/: the rest of the path as the client escaped it (a
// decoded %0d%0a would end the request line and start a second request on
// the engine's pooled connection) and the query. ok is false when the
// path, decoded, holds a control character or a space.
func upstreamTarget(r *http.Request) (uri string, ok bool) {
	if ctlOrSpace(r.PathValue("path")) || ctlOrSpace(r.PathValue("model")) {
		return "", false
	}
	_, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.EscapedPath(), "/upstream/"), "/")
	uri = "/" + rest
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	return uri, validTarget(uri)
}
