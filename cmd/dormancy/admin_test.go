package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestAdminConfig(t *testing.T) {
	c, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Addr != "127.0.0.1:8081" || !c.Admin.MonitoringReadOnly || c.Admin.LinkSecret != nil || c.Admin.SessionTTL.Hours() != 8 {
		t.Errorf("defaults: %+v", c.Admin)
	}
	bad := map[string]string{
		"ADMIN_MONITORING_READONLY": "sometimes",
		"ADMIN_LINK_SECRET":         "too short",
		"ADMIN_OPERATOR_PASSWORD":   "set without a user",
		"ADMIN_SESSION_TTL":         "30d",
	}
	_, err = LoadConfig(env(bad))
	if err == nil {
		t.Fatal("bad admin configuration accepted")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), name+":") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

// Outside dev mode (a Resend key is set) the admin server does not start
// without a link secret.
func TestRunAdminRefusesWithoutLinkSecret(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{"RESEND_API_KEY": "re_live"}))
	if err != nil {
		t.Fatal(err)
	}
	err = runAdmin(t.Context(), c, slog.New(slog.NewTextHandler(io.Discard, nil)), watches{})
	if err == nil || !strings.Contains(err.Error(), "ADMIN_LINK_SECRET") {
		t.Errorf("runAdmin = %v, want a refusal naming ADMIN_LINK_SECRET", err)
	}
}
