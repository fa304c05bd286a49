//! The cluster file. (Lead: to be written.)
