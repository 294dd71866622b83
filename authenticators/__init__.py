"""visa-hub authenticators: who the user is (OIDC or demo) and what the User Office says about her."""
