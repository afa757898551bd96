package policy

import "errors"

// Errors every layer can test for with errors.Is, whichever adapter
// produced them.
var (
	// ErrNotFound: the company, account or row named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrTokenRefused: a verification link that is unknown, used,
	// superseded, expired, for another account, or whose account changed
	// address or retired. The reasons are not told apart, so a guesser
	// learns nothing.
	ErrTokenRefused = errors.New("verification link refused")
	// ErrForbidden: the actor may not do this to this company: not an
	// active administrator of it, or not of it at all.
	ErrForbidden = errors.New("forbidden")
)
