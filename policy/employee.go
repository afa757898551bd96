package policy

import "time"

// Employee is an account as the rest of dormancy sees it: the decision's
// view plus who the person is and where their mail goes.
type Employee struct {
	ID                 int64
	CompanyID          string
	LoginID            string
	Email              string
	Name               string
	Department         string
	CanManageEmployees bool
	// The terms of an exemption (Account.Exempt), as an assessor reads
	// them: why, who granted it, and until when (zero: no end). The rule
	// reads only Exempt; an exemption past ExemptUntil is ended by the
	// relock job, within a minute.
	ExemptReason    string
	ExemptGrantedBy string
	ExemptUntil     time.Time
	Account
}

// Company is a tenant with its parsed policy.
type Company struct {
	ID     string
	Name   string
	Policy Policy
	// PrelockWarningDays lists how many days before the lock an email-ID
	// owner is warned; empty means no warning.
	PrelockWarningDays []int
	// FallbackContact is whom a locked platform-ID user asks when no
	// administrator can act (policy.CanAct): free text such as a help desk.
	FallbackContact string
	// Digest is who gets the daily digest; empty or DigestOff sends none.
	Digest Digest
	// NoticeOnLock tells an owner whose account the sweep locks how to get
	// back in.
	NoticeOnLock bool
	// PlatformName names the host platform in the company's emails; empty
	// leaves it to the worker's setting.
	PlatformName string
}
