package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

// directoryRoutes are the endpoints through which the host keeps dormancy's
// copy of its companies and employees current. The host is the source of
// the directory, so they take its API key and act for nobody; the path
// names the record, and a body naming another one is refused.
func (s *Server) directoryRoutes() []route {
	return []route{
		{"PUT /api/v1/companies/{id}", authAPIKey, s.apiHandler(s.apiPutCompany)},
		{"PUT /api/v1/companies/{id}/accounts/{login_id}", authAPIKey, s.apiHandler(s.apiPutAccount)},
		{"DELETE /api/v1/companies/{id}/accounts/{login_id}", authAPIKey, s.apiHandler(s.apiRetireAccount)},
	}
}

// directoryResponse says what a directory call did.
type directoryResponse struct {
	AccountID int64 `json:"account_id,omitempty"`
	// Outcome is created, updated, unchanged or stale (an older version
	// than the stored one: nothing changed).
	Outcome string `json:"outcome"`
}

func directoryAnswer(r tasks.DirectoryResult) (int, any, error) {
	status := http.StatusOK
	if r.Outcome == tasks.OutcomeCreated {
		status = http.StatusCreated
	}
	return status, directoryResponse{AccountID: r.AccountID, Outcome: r.Outcome}, nil
}

// samePath fills a body's identifying field from the path, or refuses a
// body that names another record.
func samePath(field string, body *string, path string) error {
	if *body != "" && *body != path {
		return errField(field, "differs from the path")
	}
	*body = path
	return nil
}

func (s *Server) apiPutCompany(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var c tasks.Company
	if err := decodeJSON(w, r, &c); err != nil {
		return 0, nil, err
	}
	if err := samePath("company_id", &c.CompanyID, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	res, err := s.host.UpsertCompany(r.Context(), c)
	if err != nil {
		return 0, nil, err
	}
	return directoryAnswer(res)
}

func (s *Server) apiPutAccount(w http.ResponseWriter, r *http.Request) (int, any, error) {
	body, err := readBody(w, r)
	if err != nil {
		return 0, nil, err
	}
	// A date alone means the start of that day in the company's zone, as
	// in an import file.
	body, err = tasks.ResolveDates(body, func() (*time.Location, error) {
		return s.store.CompanyLocation(r.Context(), r.PathValue("id"))
	})
	if err != nil {
		return 0, nil, err
	}
	var a tasks.Account
	if err := decodeBody(body, &a); err != nil {
		return 0, nil, err
	}
	if err := samePath("company_id", &a.CompanyID, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	if err := samePath("login_id", &a.LoginID, r.PathValue("login_id")); err != nil {
		return 0, nil, err
	}
	res, err := s.host.UpsertAccount(r.Context(), a)
	if err != nil {
		return 0, nil, err
	}
	return directoryAnswer(res)
}

// apiRetireAccount marks an employee retired: dormancy never locks,
// alerts on or unlocks them again. The host's version comes as ?version=.
func (s *Server) apiRetireAccount(w http.ResponseWriter, r *http.Request) (int, any, error) {
	v, err := strconv.ParseInt(r.URL.Query().Get("version"), 10, 64)
	if err != nil {
		return 0, nil, errField("version", "required: the host's version of the record, a positive number")
	}
	res, err := s.host.RetireAccount(r.Context(), tasks.Retirement{CompanyID: r.PathValue("id"), LoginID: r.PathValue("login_id"), Version: v})
	if err != nil {
		return 0, nil, err
	}
	return directoryAnswer(res)
}
