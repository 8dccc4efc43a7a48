package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmglue/vmglue/internal/ops"
	"github.com/vmglue/vmglue/internal/worker"
)

// timeout bounds what one page asks of the bus.
const timeout = 10 * time.Second

func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), timeout)
}

// vms is the list of VMs, filtered by ?q=, Options.PageSize at a time
// (?page=N, from 1; past the last page, the last).
func (s *Server) vms(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	q := r.URL.Query().Get("q")
	n := 1
	if p := r.URL.Query().Get("page"); p != "" {
		var err error
		if n, err = strconv.Atoi(p); err != nil || n < 1 {
			s.fail(w, http.StatusBadRequest, fmt.Errorf("page %.20q: want a page number from 1", p))
			return
		}
	}
	vms, err := ops.ListVMs(ctx, s.o.JS, ops.VMListRequest{Query: q, Workers: s.o.Workers})
	if err != nil {
		s.fail(w, http.StatusInternalServerError, fmt.Errorf("list vms: %w", err))
		return
	}
	pg := paginate(len(vms), n, s.o.PageSize)
	link := func(n int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		v.Set("page", strconv.Itoa(n))
		return s.o.Base + "?" + v.Encode()
	}
	if pg.Page > 1 {
		pg.Prev = link(pg.Page - 1)
	}
	if pg.Page < pg.Pages {
		pg.Next = link(pg.Page + 1)
	}
	shown := vms[pg.From:pg.To]
	s.render(w, r, "vms", page{Title: "VMs", Data: struct {
		Query   string
		Workers []string
		VMs     []ops.VMSummary
		Pages   pages
	}{q, s.workerNames(shown), shown, pg}})
}

// pages is where a page of the VM list is in the whole list.
type pages struct {
	Page, Pages int    // this page and how many there are (from 1)
	From, To    int    // the VMs shown: [From, To) of Total
	Total       int    // VMs in the list (matching the search)
	Prev, Next  string // links to the neighbouring pages, "" at an end
}

// paginate places page n of size in a list of total VMs; a page past the
// last is the last.
func paginate(total, n, size int) pages {
	count := max(1, (total+size-1)/size)
	n = min(n, count)
	from := min((n-1)*size, total)
	return pages{Page: n, Pages: count, From: from, To: min(from+size, total), Total: total}
}

// workerNames are the configured workers plus any other a VM has a state of.
func (s *Server) workerNames(vms []ops.VMSummary) []string {
	names := slices.Clone(s.o.Workers)
	for _, vm := range vms {
		for w := range vm.Workers {
			if !slices.Contains(names, w) {
				names = append(names, w)
			}
		}
	}
	slices.Sort(names)
	return names
}

// vm is one VM's page.
func (s *Server) vm(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	reps, err := ops.VMReports(ctx, s.o.JS, ops.VMRequest{Cloud: r.PathValue("cloud"), ID: r.PathValue("id"),
		Workers: s.o.Workers, Secrets: s.o.Secrets})
	switch {
	case errors.Is(err, ops.ErrNothing):
		s.fail(w, http.StatusNotFound, err)
		return
	case err != nil:
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	rep := reps[0]
	slices.Reverse(rep.Timeline) // newest first
	s.render(w, r, "vm", page{Title: "VM " + rep.Cloud + "/" + rep.ID, Refresh: 5, Data: vmView{VMReport: rep, Workers: sortedWorkers(rep.Workers)}})
}

// vmView is one VM's report with its workers in name order.
type vmView struct {
	ops.VMReport
	Workers []namedRecord
}

type namedRecord struct {
	Name string
	*worker.Record
}

func sortedWorkers(m map[string]*worker.Record) []namedRecord {
	out := make([]namedRecord, 0, len(m))
	for n, rec := range m {
		out = append(out, namedRecord{n, rec})
	}
	slices.SortFunc(out, func(a, b namedRecord) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// workers is the page of the consumers.
func (s *Server) workers(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := ops.GetStatus(ctx, s.o.JS)
	if err != nil {
		s.fail(w, http.StatusInternalServerError, fmt.Errorf("status: %w", err))
		return
	}
	vms, err := ops.ListVMs(ctx, s.o.JS, ops.VMListRequest{Workers: s.o.Workers})
	if err != nil {
		s.fail(w, http.StatusInternalServerError, fmt.Errorf("list vms: %w", err))
		return
	}
	s.render(w, r, "workers", page{Title: "Workers", Refresh: 10, Data: struct {
		Status *ops.Status
		Errors map[string]ops.WorkerError
	}{st, ops.LastErrors(vms)}})
}

// dlqRow is a dead letter with what the page derives from its subject.
type dlqRow struct {
	worker.StoredDeadLetter
	VM, Kind string
}

// dlq is the page of the dead letters.
func (s *Server) dlq(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	dls, err := ops.DeadLetters(ctx, s.o.JS, ops.DeadLetterRequest{Secrets: s.o.Secrets})
	if err != nil {
		s.fail(w, http.StatusInternalServerError, fmt.Errorf("dead letters: %w", err))
		return
	}
	rows := make([]dlqRow, len(dls))
	for i, dl := range dls {
		rows[i] = dlqRow{dl, ops.DeadLetterVM(dl), ops.DeadLetterKind(dl)}
	}
	s.render(w, r, "dlq", page{Title: "Dead letters", Data: rows})
}

// done is the page after an action.
type done struct {
	Message string
	Back    string
}

// replay republishes one VM's stored events.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, who string) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	cloud, id := r.PathValue("cloud"), r.PathValue("id")
	n, err := ops.Replay(ctx, s.o.JS, ops.ReplayRequest{EventFilter: ops.EventFilter{Cloud: cloud, VM: id}}, nil)
	log := s.o.Log.Info()
	if err != nil {
		log = s.o.Log.Error().Err(err)
	}
	log.Str("operator", who).Str("action", "replay").Str("cloud", cloud).Str("vm", id).Int("events", n).Msg("operator's page action")
	if err != nil {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("replay: %w", err))
		return
	}
	s.render(w, r, "done", page{Title: "Replayed", Data: done{fmt.Sprintf("replayed %d events of %s/%s (by %s)", n, cloud, id, who), "vm/" + cloud + "/" + id}})
}

// settle retries or drops one dead letter.
func (s *Server) settle(w http.ResponseWriter, r *http.Request, who string) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		s.fail(w, http.StatusBadRequest, errors.New("bad dead-letter sequence"))
		return
	}
	act := ops.Settle(r.PathValue("settle"))
	n, err := ops.SettleDeadLetters(ctx, s.o.JS, ops.SettleRequest{Action: act, Seqs: []uint64{seq}}, nil)
	log := s.o.Log.Info()
	if err != nil {
		log = s.o.Log.Error().Err(err)
	}
	log.Str("operator", who).Str("action", string(act)).Uint64("dead_letter", seq).Int("settled", n).Msg("operator's page action")
	if err != nil {
		s.fail(w, http.StatusBadRequest, fmt.Errorf("dlq: %w", err))
		return
	}
	s.render(w, r, "done", page{Title: "Dead letter " + act.Done(), Data: done{fmt.Sprintf("dead letter %d %s (by %s)", seq, act.Done(), who), "dlq"}})
}
