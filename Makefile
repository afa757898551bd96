.PHONY: run test build admin e2e worker scheduler faults

build:
	go build -o bin/dormancy ./cmd/dormancy

# The whole system in one process, with a demo company and host platform.
run: build
	scripts/services
	bin/dormancy dev

# The production processes, each in its own process, as the Procfile runs them.
worker scheduler admin: build
	scripts/services
	bin/dormancy migrate up
	bin/dormancy $@

test:
	scripts/test

e2e:
	scripts/services
	cd e2e && npm ci --no-audit --no-fund && node --test

# The fault suite alone (also part of `make test`): real worker and scheduler
# processes killed, Redis and Postgres taken away under load. About two
# minutes; FAULTS_LOG_DIR=dir keeps every process's log. See SCALING.md.
faults:
	scripts/services
	go test -count=1 -timeout 30m -v ./faults
