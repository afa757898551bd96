.PHONY: run test build admin e2e

build:
	go build -o bin/dormancy ./cmd/dormancy

# The scheduler runs beside the worker and stops with it.
run: build
	scripts/services
	bin/dormancy migrate up
	bin/dormancy scheduler & pid=$$!; trap 'kill $$pid 2>/dev/null' EXIT; bin/dormancy worker

test:
	scripts/test

admin: build
	scripts/services
	bin/dormancy migrate up
	bin/dormancy admin

e2e:
	scripts/services
	cd e2e && npm ci --no-audit --no-fund && node --test
