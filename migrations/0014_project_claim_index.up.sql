-- External workers claim within their project. `jobs_claim` orders every project's runnable
-- jobs together, so such a claim read another tenant's older backlog entry by entry before
-- reaching its own jobs (or walked the project's whole history through jobs_project_list and
-- sorted it). This index orders each project's runnable jobs the way the claim takes them.
CREATE INDEX jobs_claim_project ON jobs (project_id, priority, run_at, id)
  WHERE state IN ('available', 'scheduled', 'retrying');
