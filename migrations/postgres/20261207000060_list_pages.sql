-- The request list pages newest first by (created_at, id) with a cursor: an index in that order
-- keeps each page an index range scan, however many requests there are. (services pages by its
-- UNIQUE (namespace, service_name) index already.)
CREATE INDEX onboarding_requests_by_created ON onboarding_requests (created_at, id);
