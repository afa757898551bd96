ALTER TABLE audit_events
    ADD CONSTRAINT audit_events_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id),
    ADD CONSTRAINT audit_events_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL,
    ADD CONSTRAINT audit_events_actor_account_id_fkey FOREIGN KEY (actor_account_id) REFERENCES accounts (id) ON DELETE SET NULL;
