"""Who may do what: users and their ids, bucket policies, ACLs, CORS rules, and the one
decision every request passes through before its handler runs."""
