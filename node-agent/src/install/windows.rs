//! Windows: a service registered with the Service Control Manager (auto start, restart 10 s after
//! each of the first three failures, a pre-shutdown budget for a graceful stop), and the dispatcher
//! entry point [`run_as_windows_service`] that turns Stop/Shutdown control events into a
//! cancelled [`CancellationToken`].

use std::ffi::{OsStr, OsString};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType,
    ServiceState as WindowsServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

use super::{InstallReport, ServiceError, ServiceResult, ServiceSpec, ServiceState};

/// `ERROR_SERVICE_EXISTS`.
const ERROR_SERVICE_EXISTS: i32 = 1073;
/// `ERROR_SERVICE_DOES_NOT_EXIST`.
const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
/// Restart attempts after failures before the SCM gives up (until the reset period passes).
const NUM_RESTARTS: usize = 3;
/// The failure count resets after a day without failures.
const FAILURE_RESET_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);
/// Exit code reported to the SCM when the agent's run function fails (triggers failure actions).
const RUN_FAILED_EXIT_CODE: u32 = 1;

fn windows_error(action: &'static str) -> impl FnOnce(windows_service::Error) -> ServiceError {
    move |source| ServiceError::Windows { action, source }
}

fn raw_os_error(error: &windows_service::Error) -> Option<i32> {
    match error {
        windows_service::Error::Winapi(io_error) => io_error.raw_os_error(),
        _ => None,
    }
}

/// The service's arguments: the spec's, plus `--log-file <log_dir>\agent.log`, because a service
/// has no console and its stderr goes nowhere.
fn service_arguments(spec: &ServiceSpec) -> Vec<OsString> {
    let mut arguments: Vec<OsString> = spec.args.iter().map(OsString::from).collect();
    arguments.push("--log-file".into());
    arguments.push(spec.log_dir.join("agent.log").into_os_string());
    arguments
}

/// Creates (or reconfigures) the service, sets its failure actions and starts it.
pub fn install(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    let mut report = InstallReport::default();
    super::create_log_dir(spec, &mut report)?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(windows_error("connect"))?;
    let service_info = ServiceInfo {
        name: OsString::from(&spec.name),
        display_name: OsString::from(&spec.display_name),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: spec.executable.clone(),
        launch_arguments: service_arguments(spec),
        dependencies: vec![],
        account_name: spec.user.as_ref().map(OsString::from),
        account_password: None,
    };
    let access = ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS;
    let service = match manager.create_service(&service_info, access) {
        Ok(service) => {
            report.actions.push(format!("created service {}", spec.name));
            service
        }
        Err(error) if raw_os_error(&error) == Some(ERROR_SERVICE_EXISTS) => {
            let service = manager
                .open_service(&spec.name, access)
                .map_err(windows_error("open service"))?;
            service
                .change_config(&service_info)
                .map_err(windows_error("change config"))?;
            report.actions.push(format!("updated existing service {}", spec.name));
            service
        }
        Err(error) => return Err(windows_error("create service")(error)),
    };
    service
        .set_description(&spec.description)
        .map_err(windows_error("set description"))?;
    let restart_after_delay = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: spec.restart_delay,
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(FAILURE_RESET_PERIOD),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart_after_delay; NUM_RESTARTS]),
        })
        .map_err(windows_error("set failure actions"))?;
    // Also restart after a non-zero exit, not only after a crash.
    service
        .set_failure_actions_on_non_crash_failures(true)
        .map_err(windows_error("set failure flag"))?;
    service
        .set_preshutdown_timeout(spec.stop_timeout)
        .map_err(windows_error("set preshutdown timeout"))?;
    report.actions.push(format!(
        "auto start, restart after {} s on the first {NUM_RESTARTS} failures",
        spec.restart_delay.as_secs()
    ));
    let current_state = service
        .query_status()
        .map_err(windows_error("query status"))?
        .current_state;
    if current_state == WindowsServiceState::Stopped {
        service.start(&[] as &[&OsStr]).map_err(windows_error("start"))?;
        report.actions.push(format!("started service {}", spec.name));
    }
    Ok(report)
}

/// Marks the service for deletion and asks it to stop; the SCM deletes it once it has stopped.
pub fn uninstall(spec: &ServiceSpec) -> ServiceResult<InstallReport> {
    let mut report = InstallReport::default();
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(windows_error("connect"))?;
    let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
    let service = match manager.open_service(&spec.name, access) {
        Ok(service) => service,
        Err(error) if raw_os_error(&error) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => return Ok(report),
        Err(error) => return Err(windows_error("open service")(error)),
    };
    service.delete().map_err(windows_error("delete"))?;
    report
        .actions
        .push(format!("marked service {} for deletion", spec.name));
    if service
        .query_status()
        .map_err(windows_error("query status"))?
        .current_state
        != WindowsServiceState::Stopped
    {
        service.stop().map_err(windows_error("stop"))?;
        report.actions.push(format!("asked service {} to stop", spec.name));
    }
    Ok(report)
}

/// The SCM's view of the service.
pub fn status(spec: &ServiceSpec) -> ServiceResult<ServiceState> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .map_err(windows_error("connect"))?;
    let service = match manager.open_service(&spec.name, ServiceAccess::QUERY_STATUS) {
        Ok(service) => service,
        Err(error) if raw_os_error(&error) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
            return Ok(ServiceState::NotInstalled);
        }
        Err(error) => return Err(windows_error("open service")(error)),
    };
    let current_state = service
        .query_status()
        .map_err(windows_error("query status"))?
        .current_state;
    Ok(match current_state {
        WindowsServiceState::Running => ServiceState::Running,
        WindowsServiceState::StartPending | WindowsServiceState::ContinuePending => ServiceState::Starting,
        WindowsServiceState::StopPending => ServiceState::Stopping,
        WindowsServiceState::Stopped => ServiceState::Stopped,
        WindowsServiceState::Paused | WindowsServiceState::PausePending => ServiceState::Other("paused".to_owned()),
    })
}

/// The agent's body under the SCM: runs until `shutdown` is cancelled (or fails), blocking.
pub type ServiceMain = fn(shutdown: CancellationToken) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct RegisteredService {
    name: String,
    run: ServiceMain,
    stop_wait_hint: Duration,
}

/// Set once by [`run_as_windows_service`]; the SCM's callback has no other way to reach it.
static REGISTERED_SERVICE: OnceLock<RegisteredService> = OnceLock::new();

define_windows_service!(ffi_service_main, service_main);

/// Hands this process to the Service Control Manager: blocks until the service has stopped. `run`
/// is called on the SCM's service thread with a token cancelled on Stop, Shutdown or
/// Preshutdown; meanwhile the SCM is told to wait up to `stop_wait_hint` for it to return.
/// Fails when the process was not started by the SCM (e.g. from a console).
pub fn run_as_windows_service(service_name: &str, stop_wait_hint: Duration, run: ServiceMain) -> ServiceResult<()> {
    let registered = RegisteredService {
        name: service_name.to_owned(),
        run,
        stop_wait_hint,
    };
    if REGISTERED_SERVICE.set(registered).is_err() {
        return Err(ServiceError::Command {
            command: "run as windows service".to_owned(),
            detail: "already running as a service".to_owned(),
        });
    }
    service_dispatcher::start(service_name, ffi_service_main).map_err(windows_error("start dispatcher"))
}

fn service_main(_arguments: Vec<OsString>) {
    let Some(registered) = REGISTERED_SERVICE.get() else {
        return;
    };
    if let Err(error) = run_service(registered) {
        tracing::error!(%error, "windows service failed");
    }
}

fn status_update(
    state: WindowsServiceState,
    accepted: ServiceControlAccept,
    exit_code: u32,
    wait_hint: Duration,
) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: accepted,
        exit_code: if exit_code == 0 {
            ServiceExitCode::Win32(0)
        } else {
            ServiceExitCode::ServiceSpecific(exit_code)
        },
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

fn run_service(registered: &RegisteredService) -> ServiceResult<()> {
    let shutdown = CancellationToken::new();
    let handler_shutdown = shutdown.clone();
    let status_handle_slot: Arc<OnceLock<ServiceStatusHandle>> = Arc::new(OnceLock::new());
    let handler_status_handle_slot = Arc::clone(&status_handle_slot);
    let stop_wait_hint = registered.stop_wait_hint;
    let event_handler = move |control_event| -> ServiceControlHandlerResult {
        match control_event {
            ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
                if let Some(status_handle) = handler_status_handle_slot.get() {
                    let stop_pending = status_update(
                        WindowsServiceState::StopPending,
                        ServiceControlAccept::empty(),
                        0,
                        stop_wait_hint,
                    );
                    if let Err(error) = status_handle.set_service_status(stop_pending) {
                        tracing::warn!(%error, "could not report stop pending");
                    }
                }
                tracing::info!(event = ?control_event, "service stop requested");
                handler_shutdown.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let status_handle = service_control_handler::register(&registered.name, event_handler)
        .map_err(windows_error("register handler"))?;
    let _ = status_handle_slot.set(status_handle);
    let accepted = ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN;
    status_handle
        .set_service_status(status_update(WindowsServiceState::Running, accepted, 0, Duration::ZERO))
        .map_err(windows_error("report running"))?;

    let exit_code = match (registered.run)(shutdown) {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!(%error, "agent stopped with an error");
            RUN_FAILED_EXIT_CODE
        }
    };
    status_handle
        .set_service_status(status_update(
            WindowsServiceState::Stopped,
            ServiceControlAccept::empty(),
            exit_code,
            Duration::ZERO,
        ))
        .map_err(windows_error("report stopped"))
}
