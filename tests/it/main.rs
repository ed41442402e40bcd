mod lab_sim;
