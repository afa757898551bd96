package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// tracing reports whether traces are sent (OTEL_EXPORTER_OTLP_ENDPOINT).
func (c *Config) tracing() bool { return c.OTelEndpoint != "" }

// startTracing sends the process's spans to OTEL_EXPORTER_OTLP_ENDPOINT
// and carries trace context as W3C traceparent, in HTTP headers and task
// headers. The returned func flushes what is still buffered. Without an
// endpoint it does nothing: the global provider stays the no-op one.
func startTracing(ctx context.Context, cfg *Config, process string, log *slog.Logger) (func(), error) {
	if !cfg.tracing() {
		return func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTelEndpoint))
	if err != nil {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT %s: %w", cfg.OTelEndpoint, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(resource.NewSchemaless(
		attribute.String("service.name", "dormancy"),
		attribute.String("service.version", version()),
		attribute.String("dormancy.process", process),
	)))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	// An unreachable collector is logged, not fatal: traces are evidence
	// for operators, never in the way of a login.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing", slog.String("error", err.Error()))
	}))
	log.Info("tracing on", slog.String("endpoint", cfg.OTelEndpoint))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}
