//! Starting the cluster. (Lead: to be written.)
