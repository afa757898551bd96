package admin

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// administeredAccount is the path's account, for an actor who administers
// its company; another company's account reads as missing.
func (s *Server) administeredAccount(r *http.Request) (postgres.AccountView, postgres.Actor, error) {
	id, err := pathAccountID(r)
	if err != nil {
		return postgres.AccountView{}, postgres.Actor{}, err
	}
	actor, _ := r.Context().Value(actorKey{}).(postgres.Actor)
	a, err := s.accountOf(r, id, actor.CompanyID)
	if err != nil {
		return a, actor, err
	}
	if !actor.Administers(a.CompanyID) {
		return a, actor, policy.ErrForbidden
	}
	return a, actor, nil
}

// apiExportAccount answers a person's request for their data: everything
// dormancy holds about the account, in one JSON document.
func (s *Server) apiExportAccount(w http.ResponseWriter, r *http.Request) (int, any, error) {
	a, _, err := s.administeredAccount(r)
	if err != nil {
		return 0, nil, err
	}
	doc, err := s.store.ExportAccount(r.Context(), a.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, json.RawMessage(doc), nil
}

// apiEraseAccount erases a retired account's personal data on request,
// keeping its audit trail about the pseudonymised account.
func (s *Server) apiEraseAccount(w http.ResponseWriter, r *http.Request) (int, any, error) {
	a, actor, err := s.administeredAccount(r)
	if err != nil {
		return 0, nil, err
	}
	pseudonym, err := s.store.EraseAccount(r.Context(), a.ID, fmt.Sprintf("account %d", actor.AccountID), s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"account_id": a.ID, "login_id": pseudonym, "erased": true}, nil
}
