"""What is specific to the seed paper (Egi et al., *Evaluating Xen for Router Virtualization*):
its figures as sweep sets, its claims as verdict rules, the plots and the report."""
