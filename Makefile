.PHONY: run test build

build:
	go build -o bin/dormancy ./cmd/dormancy

run: build
	scripts/services
	bin/dormancy migrate up
	bin/dormancy worker

test:
	scripts/test
