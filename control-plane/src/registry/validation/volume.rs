//! `spec.volumes` (`ValidateVolumes`, `validateVolumeSource`): names, exactly one source, and the
//! sources a small cluster meets; the cloud-specific ones only count towards "one source".

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Volume};

use super::{FieldPath, dns1123_label, duplicate, forbidden, invalid, invalid_raw, not_supported, opt, required, required_detail};
use crate::api::error::Cause;

const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Validates the volumes and returns those that passed, by name, for the mount checks.
pub(crate) fn volumes<'a>(vols: &'a [Volume], path: &FieldPath) -> (BTreeMap<&'a str, &'a Volume>, Vec<Cause>) {
    let mut all = vec![];
    let mut by_name = BTreeMap::new();
    for (i, vol) in vols.iter().enumerate() {
        let idx = path.index(i);
        let name_path = idx.child("name");
        let mut el = source(vol, &idx);
        if vol.name.is_empty() {
            el.push(required(&name_path));
        } else {
            el.extend(dns1123_label(&vol.name, &name_path));
        }
        if by_name.contains_key(vol.name.as_str()) {
            el.push(duplicate(&name_path, &vol.name));
        }
        if el.is_empty() {
            by_name.insert(vol.name.as_str(), vol);
        } else {
            all.extend(el);
        }
    }
    (by_name, all)
}

fn source(v: &Volume, path: &FieldPath) -> Vec<Cause> {
    // Kubernetes' order (and its "downwarAPI" spelling in the error path).
    let present: [(&str, bool); 30] = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephFS", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwarAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut errs = vec![];
    let mut first: Option<&str> = None;
    for (name, set) in present {
        if !set {
            continue;
        }
        if first.is_some() {
            errs.push(forbidden(&path.child(name), "may not specify more than 1 volume type"));
        } else {
            first = Some(name);
        }
    }
    match first {
        None => errs.push(required_detail(path, "must specify a volume type")),
        Some(kind) => errs.extend(one_source(v, kind, path)),
    }
    errs
}

fn one_source(v: &Volume, kind: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    match kind {
        "emptyDir" => {
            let limit = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if limit.is_some_and(|q| crate::registry::quantity::parse_quantity(&q.0).map(|m| m < 0).unwrap_or(true)) {
                errs.push(forbidden(&path.child("emptyDir").child("sizeLimit"), "SizeLimit field must be a valid resource quantity"));
            }
        }
        "hostPath" => {
            if let Some(h) = &v.host_path {
                let p = path.child("hostPath");
                if h.path.is_empty() {
                    errs.push(required(&p.child("path")));
                } else {
                    errs.extend(no_backsteps(&h.path, &p.child("path")));
                    let supported = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"];
                    if let Some(t) = &h.type_
                        && !supported.contains(&t.as_str()) {
                            errs.push(not_supported(&p.child("type"), t, &supported));
                        }
                }
            }
        }
        "secret" => {
            if let Some(s) = &v.secret {
                let p = path.child("secret");
                if opt(&s.secret_name).is_empty() {
                    errs.push(required(&p.child("secretName")));
                }
                errs.extend(mode(s.default_mode, &p.child("defaultMode")));
                errs.extend(items(s.items.as_deref().unwrap_or(&[]), &p.child("items")));
            }
        }
        "configMap" => {
            if let Some(c) = &v.config_map {
                let p = path.child("configMap");
                if c.name.is_empty() {
                    errs.push(required(&p.child("name")));
                }
                errs.extend(mode(c.default_mode, &p.child("defaultMode")));
                errs.extend(items(c.items.as_deref().unwrap_or(&[]), &p.child("items")));
            }
        }
        "persistentVolumeClaim"
            if v.persistent_volume_claim.as_ref().is_some_and(|c| c.claim_name.is_empty()) => {
                errs.push(required(&path.child("persistentVolumeClaim").child("claimName")));
            }
        "nfs" => {
            if let Some(n) = &v.nfs {
                let p = path.child("nfs");
                if n.server.is_empty() {
                    errs.push(required(&p.child("server")));
                }
                if n.path.is_empty() {
                    errs.push(required(&p.child("path")));
                }
                if !n.path.starts_with('/') {
                    errs.push(invalid(&p.child("path"), &n.path, "must be an absolute path"));
                }
            }
        }
        "csi"
            if v.csi.as_ref().is_some_and(|c| c.driver.is_empty()) => {
                errs.push(required(&path.child("csi").child("driver")));
            }
        "downwarAPI" => {
            if let Some(d) = &v.downward_api {
                let p = path.child("downwardAPI");
                errs.extend(mode(d.default_mode, &p.child("defaultMode")));
                for f in d.items.iter().flatten() {
                    if f.path.is_empty() {
                        errs.push(required(&p.child("path")));
                    }
                    errs.extend(local_non_reserved_path(&f.path, &p.child("path")));
                    if f.field_ref.is_none() && f.resource_field_ref.is_none() {
                        errs.push(required_detail(&p, "one of fieldRef and resourceFieldRef is required"));
                    }
                    errs.extend(mode(f.mode, &p.child("mode")));
                }
            }
        }
        "projected" => {
            if let Some(pr) = &v.projected {
                let p = path.child("projected");
                errs.extend(mode(pr.default_mode, &p.child("defaultMode")));
                for (i, s) in pr.sources.iter().flatten().enumerate() {
                    let sp = p.child("sources").index(i);
                    let count = [s.secret.is_some(), s.config_map.is_some(), s.downward_api.is_some(), s.service_account_token.is_some(), s.cluster_trust_bundle.is_some()]
                        .iter()
                        .filter(|b| **b)
                        .count();
                    if count > 1 {
                        errs.push(forbidden(&sp, "may not specify more than 1 volume type per source"));
                    }
                    if let Some(t) = &s.service_account_token {
                        let exp = t.expiration_seconds.unwrap_or(3600);
                        if exp < 600 {
                            errs.push(invalid_raw(&sp.child("serviceAccountToken").child("expirationSeconds"), exp, "may not specify a duration less than 10 minutes"));
                        }
                        if exp > 1 << 32 {
                            errs.push(invalid_raw(&sp.child("serviceAccountToken").child("expirationSeconds"), exp, "may not specify a duration larger than 2^32 seconds"));
                        }
                        if t.path.is_empty() {
                            errs.push(required(&p.child("path")));
                        } else {
                            errs.extend(local_non_reserved_path(&t.path, &p.child("path")));
                        }
                    }
                    if let Some(sec) = &s.secret {
                        errs.extend(items(sec.items.as_deref().unwrap_or(&[]), &sp.child("secret").child("items")));
                    }
                    if let Some(cm) = &s.config_map {
                        errs.extend(items(cm.items.as_deref().unwrap_or(&[]), &sp.child("configMap").child("items")));
                    }
                }
            }
        }
        _ => {}
    }
    errs
}

fn mode(m: Option<i32>, path: &FieldPath) -> Vec<Cause> {
    match m {
        Some(m) if !(0..=0o777).contains(&m) => vec![invalid_raw(path, m, FILE_MODE_ERROR_MSG)],
        _ => vec![],
    }
}

fn items(list: &[KeyToPath], path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    for (i, kp) in list.iter().enumerate() {
        let p = path.index(i);
        if kp.key.is_empty() {
            errs.push(required(&p.child("key")));
        }
        if kp.path.is_empty() {
            errs.push(required(&p.child("path")));
        }
        errs.extend(local_non_reserved_path(&kp.path, &p.child("path")));
        errs.extend(mode(kp.mode, &p.child("mode")));
    }
    errs
}

/// No `..` element anywhere in the path.
pub(crate) fn no_backsteps(target: &str, path: &FieldPath) -> Vec<Cause> {
    if target.replace('\\', "/").split('/').any(|p| p == "..") {
        vec![invalid(path, target, "must not contain '..'")]
    } else {
        vec![]
    }
}

/// Relative and without `..` elements.
pub(crate) fn local_descending_path(target: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = vec![];
    if target.starts_with('/') {
        errs.push(invalid(path, target, "must be a relative path"));
    }
    errs.extend(no_backsteps(target, path));
    errs
}

fn local_non_reserved_path(target: &str, path: &FieldPath) -> Vec<Cause> {
    let mut errs = local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(invalid(path, target, "must not start with '..'"));
    }
    errs
}
