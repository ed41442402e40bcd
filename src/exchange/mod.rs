//! What salve knows about Exchange: build numbers ([`build`]), the CU/SU/CVE catalogue compiled
//! into the binary ([`catalogue`]), what a given build is missing and the shortest supported path
//! to fixed ([`assess`], [`path`]), and the Setup prerequisites for a target CU ([`prereq`]).

pub mod assess;
pub mod build;
pub mod catalogue;
pub mod dotnet;
pub mod ids;
pub mod mitigation;
pub mod path;
pub mod prereq;
pub mod protection;
pub mod released;
pub mod signature;
pub mod support;
