//! Keeps the code of deployed `provided` functions in memory between their cold starts.
//!
//! A function scaled to zero has no process, so nothing maps its executable, and the kernel
//! treats the executable's pages as unmapped page cache: the first thing reclaimed under memory
//! pressure, and what a host's proactive reclaim (DAMON on cloud VMs) pages out after a minute
//! unused. The next cold start then waits on the disk: the init of a Rust `lambda_runtime`
//! function after 95 s idle had a median of 4.75 ms with its executable unmapped and 2.65 ms
//! with it mapped (`bench/long_idle_cold.sh`, BENCHMARKS.md).
//!
//! Gust therefore maps the loadable part of each deployed ELF executable (from the start of
//! the file to the end of its last `PT_LOAD` segment; debug sections after it are left out)
//! read-only and populated, and holds the mapping while the function is deployed. The pages are
//! the page cache's own (`MAP_PRIVATE`, never written), shared with the function's processes:
//! no copy, no extra memory beyond keeping them cached; they count in Gust's resident set as
//! file pages. Under real memory pressure the kernel may still reclaim them, as it may any
//! mapped page; this is a preference, not a lock (`mlock` would need privileges).
//!
//! Interpreted runtimes (Node, Python) need none of this: their prewarmed spares map the
//! interpreter. Scripts (a `bootstrap` that is not ELF) are not mapped.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// One executable's loadable bytes, mapped while any deployed function uses it.
pub(crate) struct ResidentCode {
    addr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

// SAFETY: the mapping is read-only, never read through by Gust, and only unmapped on drop.
#[allow(unsafe_code)]
unsafe impl Send for ResidentCode {}
#[allow(unsafe_code)]
unsafe impl Sync for ResidentCode {}

impl ResidentCode {
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for ResidentCode {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what mmap returned; nothing references the mapping.
        let _ = unsafe { nix::sys::mman::munmap(self.addr, self.len) };
    }
}

/// The end of the last `PT_LOAD` segment's file bytes of a 64-bit little-endian ELF file, or
/// `None` if it is not one (a script, another format).
fn loadable_end(file: &mut File) -> std::io::Result<Option<u64>> {
    let mut ehdr = [0u8; 64];
    if file.read(&mut ehdr)? < 64 || &ehdr[..4] != b"\x7fELF" || ehdr[4] != 2 || ehdr[5] != 1 {
        return Ok(None);
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(&ehdr, 0x20), u16_at(&ehdr, 0x36), u16_at(&ehdr, 0x38));
    if phentsize < 56 || phnum == 0 || phnum > 4096 {
        return Ok(None);
    }
    let mut phdrs = vec![0u8; (phentsize * phnum) as usize];
    file.seek(SeekFrom::Start(phoff))?;
    file.read_exact(&mut phdrs)?;
    const PT_LOAD: u32 = 1;
    let end = phdrs
        .chunks_exact(phentsize as usize)
        .filter(|ph| u32_at(ph, 0) == PT_LOAD)
        .map(|ph| u64_at(ph, 8).saturating_add(u64_at(ph, 32)))
        .max();
    Ok(end)
}

/// Maps the first `len` bytes of `file` read-only, faulted in.
#[allow(unsafe_code)]
fn map(file: &File, len: u64) -> std::io::Result<ResidentCode> {
    use nix::sys::mman::{mmap, MapFlags, ProtFlags};
    let len = std::num::NonZeroUsize::new(len as usize).ok_or_else(|| std::io::Error::other("empty"))?;
    // SAFETY: a fresh private read-only mapping of a file we opened; Gust never reads it (a
    // file truncated later cannot fault us), and `ResidentCode` unmaps it exactly once.
    let addr = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
            file,
            0,
        )
    }?;
    Ok(ResidentCode { addr, len: len.get() })
}

/// The executables kept mapped, shared by every function that runs the same file, within a
/// budget of bytes over all of them.
pub(crate) struct ResidentSet {
    budget: u64,
    held: Mutex<HashMap<(u64, u64), Weak<ResidentCode>>>,
}

/// What a prepared function holds: filled in the background (mapping reads the file from disk
/// when it is not cached), empty if the file is not ELF or over the budget.
pub(crate) type Holding = Arc<OnceLock<Arc<ResidentCode>>>;

impl ResidentSet {
    pub(crate) fn new(budget_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            budget: budget_bytes,
            held: Mutex::new(HashMap::new()),
        })
    }

    fn in_use(held: &HashMap<(u64, u64), Weak<ResidentCode>>) -> u64 {
        held.values().filter_map(Weak::upgrade).map(|c| c.len() as u64).sum()
    }

    /// Starts keeping `path` mapped for as long as the returned holding lives.
    pub(crate) fn hold(self: &Arc<Self>, path: &Path) -> Holding {
        let holding: Holding = Arc::new(OnceLock::new());
        if self.budget == 0 {
            return holding;
        }
        let (set, path, out) = (self.clone(), path.to_path_buf(), holding.clone());
        let work = move || {
            if let Err(e) = set.fill(&path, &out) {
                tracing::debug!(path = %path.display(), error = %e, "function code not kept mapped");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(work)),
            Err(_) => work(),
        }
        holding
    }

    fn fill(&self, path: &Path, out: &Holding) -> std::io::Result<()> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        let key = (meta.dev(), meta.ino());
        let Some(end) = loadable_end(&mut file)? else {
            return Ok(()); // not ELF: nothing to keep
        };
        let len = end.min(meta.len());
        let mut held = self.held.lock().expect("resident lock");
        if let Some(code) = held.get(&key).and_then(Weak::upgrade) {
            let _ = out.set(code);
            return Ok(());
        }
        held.retain(|_, w| w.strong_count() > 0);
        if Self::in_use(&held) + len > self.budget {
            return Err(std::io::Error::other(format!(
                "{len} loadable bytes exceed what is left of the {} byte budget",
                self.budget
            )));
        }
        let code = Arc::new(map(&file, len)?);
        held.insert(key, Arc::downgrade(&code));
        let _ = out.set(code);
        Ok(())
    }

    /// Bytes of function code kept mapped now.
    #[cfg(test)]
    pub(crate) fn mapped_bytes(&self) -> u64 {
        Self::in_use(&self.held.lock().expect("resident lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped_in_self(path: &Path) -> bool {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let p = path.canonicalize().unwrap();
        maps.lines().any(|l| l.ends_with(p.to_str().unwrap()))
    }

    fn copy_of_self(dir: &Path, name: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::copy(std::env::current_exe().unwrap(), &p).unwrap();
        p
    }

    #[test]
    fn the_loadable_part_of_an_elf_file_is_found_and_a_script_is_not_elf() {
        let mut exe = File::open(std::env::current_exe().unwrap()).unwrap();
        let end = loadable_end(&mut exe).unwrap().expect("the test binary is ELF");
        assert!(end > 0 && end <= exe.metadata().unwrap().len());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bootstrap"), "#!/bin/sh\nexec ./app\n").unwrap();
        let mut script = File::open(dir.path().join("bootstrap")).unwrap();
        assert_eq!(loadable_end(&mut script).unwrap(), None);
    }

    #[test]
    fn an_executable_stays_mapped_while_held_once_for_all_its_holders() {
        let dir = tempfile::tempdir().unwrap();
        let exe = copy_of_self(dir.path(), "bootstrap");
        let set = ResidentSet::new(1 << 30);
        let a = set.hold(&exe);
        let b = set.hold(&exe);
        assert!(mapped_in_self(&exe), "held code is mapped");
        assert!(Arc::ptr_eq(a.get().unwrap(), b.get().unwrap()), "one mapping per file");
        let len = a.get().unwrap().len() as u64;
        assert_eq!(set.mapped_bytes(), len);
        drop(a);
        assert!(mapped_in_self(&exe), "still held by the other function");
        drop(b);
        assert!(!mapped_in_self(&exe), "unmapped when nothing holds it");
        assert_eq!(set.mapped_bytes(), 0);
    }

    #[test]
    fn code_over_the_budget_and_scripts_are_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let first = copy_of_self(dir.path(), "first");
        let second = copy_of_self(dir.path(), "second");
        let len = loadable_end(&mut File::open(&first).unwrap()).unwrap().unwrap();
        let set = ResidentSet::new(len + len / 2);
        let a = set.hold(&first);
        let b = set.hold(&second);
        assert!(a.get().is_some());
        assert!(b.get().is_none(), "the second file did not fit the budget");
        assert!(!mapped_in_self(&second));
        std::fs::write(dir.path().join("script"), "#!/bin/sh\n").unwrap();
        assert!(set.hold(&dir.path().join("script")).get().is_none());
        assert!(
            ResidentSet::new(0).hold(&first).get().is_none(),
            "a budget of 0 turns it off"
        );
    }
}
