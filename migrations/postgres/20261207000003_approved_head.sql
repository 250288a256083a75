-- Approval binds to content: the head commit a pull request was approved with (first the commit
-- meshport pushed for the approved change, later a head a platform admin re-approved), the head
-- it was merged with, and whether that merged head differed from the approved one (commits were
-- pushed to the branch after approval; the request then stays `pr_open` until re-approved).
ALTER TABLE pull_requests ADD COLUMN approved_head_sha TEXT;
ALTER TABLE pull_requests ADD COLUMN merged_head_sha TEXT;
ALTER TABLE pull_requests ADD COLUMN changed_after_approval BOOLEAN NOT NULL DEFAULT FALSE;

-- Pull requests opened before: meshport's own push was the approved head.
UPDATE pull_requests SET approved_head_sha = head_sha;
