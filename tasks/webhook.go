package tasks

import (
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

// TypeWebhookDeliver delivers one webhook message to one endpoint. The
// worker's dispatcher enqueues it from the delivery outbox in Postgres.
const TypeWebhookDeliver = "webhook:deliver"

// QueueWebhooks holds the deliveries, apart from email and logins, so a
// slow receiver never delays a person and Asynqmon shows them by name.
const QueueWebhooks = "webhooks"

// WebhookMaxRetry is how many times a delivery is retried: with the
// worker's default backoff for webhook:* (10 s doubling to 1 h) about a
// day, after which the delivery is failed. An endpoint failing that long is
// disabled first (WEBHOOK_DISABLE_AFTER).
const WebhookMaxRetry = 32

// WebhookDelivery names one row of the delivery outbox; the message,
// endpoint and keys are read from Postgres when it runs.
type WebhookDelivery struct {
	Contract
	DeliveryID int64 `json:"delivery_id"`
}

// Validate checks every field and names the first bad one.
func (p *WebhookDelivery) Validate() error {
	if p.DeliveryID <= 0 {
		return &FieldError{Field: "delivery_id", Reason: "required, a positive id"}
	}
	return nil
}

// WebhookTaskID is the task ID of a delivery: enqueueing one twice is a
// no-op while its task exists.
func WebhookTaskID(deliveryID int64) string { return "webhook:" + strconv.FormatInt(deliveryID, 10) }

// NewWebhookDeliveryTask builds the task of one delivery. Finished tasks
// stay a day, so Asynqmon shows what was delivered.
func NewWebhookDeliveryTask(p WebhookDelivery) (*asynq.Task, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewWebhookDeliveryTask: %w", err)
	}
	return marshal(TypeWebhookDeliver, &p, asynq.Queue(QueueWebhooks), asynq.MaxRetry(WebhookMaxRetry),
		asynq.Timeout(time.Minute), asynq.Retention(24*time.Hour), asynq.TaskID(WebhookTaskID(p.DeliveryID)))
}

// DecodeWebhookDelivery parses and validates a delivery payload.
func DecodeWebhookDelivery(data []byte) (WebhookDelivery, error) {
	var p WebhookDelivery
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}
