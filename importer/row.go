package importer

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// The columns of an import file, by the names of tasks.Account's JSON
// fields plus status (active or retired) and version. In a CSV file they
// may come in any order; the required ones must be there.
const (
	colCompanyID = iota
	colLoginID
	colIDKind
	colEmail
	colName
	colDepartment
	colCanManageEmployees
	colExempt
	colCreatedAt
	colLastLoginAt
	colStatus
	colVersion
	numColumns
)

var columnNames = [numColumns]string{
	"company_id", "login_id", "id_kind", "email", "name", "department",
	"can_manage_employees", "exempt", "created_at", "last_login_at", "status", "version",
}

// requiredColumns must be in a CSV header: without them no row can be valid.
var requiredColumns = []int{colCompanyID, colLoginID, colIDKind, colName, colCreatedAt}

func columnIndex(name string) int {
	for i, n := range columnNames {
		if n == name {
			return i
		}
	}
	return -1
}

// rowField names the whole row in a reject that is not about one field.
const rowField = "(row)"

// record is one row's values as text, whichever the format; an empty value
// is the same as a missing one.
type record [numColumns]string

// check turns a record into a staging row, or a reject naming the first
// bad field: encoding first, then the typed columns, then the rules a
// directory event must follow (tasks.Account.CheckFields), so a row is
// judged exactly as the same employee sent through the API would be.
func check(line int64, rec *record) postgres.ImportRow {
	reject := func(field, reason string) postgres.ImportRow {
		return postgres.ImportRow{Line: line, RejectField: field, RejectReason: reason}
	}
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return reject(columnNames[i], "not valid UTF-8")
		}
	}
	row := postgres.ImportRow{Line: line}
	var err error
	if row.CanManageEmployees, err = parseBool(rec[colCanManageEmployees]); err != nil {
		return reject(columnNames[colCanManageEmployees], err.Error())
	}
	if row.Exempt, err = parseBool(rec[colExempt]); err != nil {
		return reject(columnNames[colExempt], err.Error())
	}
	if row.CreatedAt, row.CreatedOn, err = parseTime(rec[colCreatedAt]); err != nil {
		return reject(columnNames[colCreatedAt], err.Error())
	}
	if row.LastLoginAt, row.LastLoginOn, err = parseTime(rec[colLastLoginAt]); err != nil {
		return reject(columnNames[colLastLoginAt], err.Error())
	}
	switch s := rec[colStatus]; s {
	case "", "active":
	case "retired":
		row.Retired = true
	default:
		return reject(columnNames[colStatus], fmt.Sprintf("unknown status %q (want active or retired)", s))
	}
	if v := rec[colVersion]; v != "" {
		if row.Version, err = strconv.ParseInt(v, 10, 64); err != nil || row.Version < 0 {
			return reject(columnNames[colVersion], fmt.Sprintf("want a whole number from 0 up, got %q", v))
		}
	}
	a := tasks.Account{
		CompanyID: rec[colCompanyID], LoginID: rec[colLoginID], IDKind: rec[colIDKind], Email: rec[colEmail],
		Name: rec[colName], Department: rec[colDepartment], CreatedAt: row.CreatedAt,
	}
	if !row.LastLoginAt.IsZero() {
		a.LastLoginAt = &row.LastLoginAt
	}
	if err := a.CheckFields(); err != nil {
		var fe *tasks.FieldError
		if errors.As(err, &fe) {
			return reject(fe.Field, fe.Reason)
		}
		return reject(rowField, err.Error())
	}
	row.CompanyID, row.LoginID, row.IDKind, row.Email = a.CompanyID, a.LoginID, a.IDKind, a.Email
	row.Name, row.Department = a.Name, a.Department
	return row
}

// parseBool takes true and false only, as the API does: a "yes" or "1"
// that meant something else must not grant the employee-management
// permission by accident. Empty is false.
func parseBool(s string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, fmt.Errorf("want true or false, got %q", s)
}

// parseTime reads an RFC 3339 time, or a date alone, which means the start
// of that day in the company's time zone (known only in the database, so
// it is kept as a date until then).
func parseTime(s string) (t time.Time, date bool, err error) {
	switch {
	case s == "":
		return time.Time{}, false, nil
	case len(s) == len(time.DateOnly):
		t, err = time.Parse(time.DateOnly, s)
		date = true
	default:
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("want an RFC 3339 time (2026-04-01T09:30:00+09:00) or a date (2026-04-01), got %q", s)
	}
	return t, date, nil
}
